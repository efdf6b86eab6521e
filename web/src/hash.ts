// The hashes a buyer checks in the browser, byte for byte the ones qor-protocol computes in Rust:
// the job spec's canonical JSON and `specHash`, the storage Merkle root, and a job's `resultDigest`.
// `test/hash.test.ts` checks each against the vectors qor-protocol writes (contracts/test/data).

import { type Hex, bytesToHex, concat, keccak256, toBytes } from 'viem';

/** Spec format version (`qor_protocol::spec::SPEC_VERSION`). */
export const SPEC_VERSION = 1;
/** Bytes per storage chunk (`qor_protocol::merkle::CHUNK_SIZE`). */
export const CHUNK_SIZE = 1024;

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const utf8 = new TextEncoder();

/** Compares strings by their UTF-8 bytes, as Rust orders `String`s (JS `<` compares UTF-16 units). */
export function compareUtf8(a: string, b: string): number {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/**
 * Canonical JSON (RFC 8785 style): object keys sorted by their bytes, no whitespace, integers as plain
 * decimals, strings escaped minimally (JSON.stringify's escaping is serde_json's).
 */
export function canonicalJson(value: Json): string {
  if (value === null || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`${value} is not an integer JavaScript and Rust both represent exactly`);
    return String(value);
  }
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort(compareUtf8);
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
}

export interface InputFile {
  path: string;
  hash: Hex;
}

export interface Limits {
  fuel: number;
  memoryBytes: number;
  outputBytes: number;
  wallClockMs: number;
}

export interface JobSpec {
  version: number;
  module: Hex;
  entry: string;
  args: string[];
  env: Record<string, string>;
  inputs: InputFile[];
  limits: Limits;
  redundancy: number;
}

/** The spec as its canonical JSON object: inputs sorted by path, hashes in lower case. */
export function specJson(spec: JobSpec): Json {
  const inputs = [...spec.inputs]
    .sort((a, b) => compareUtf8(a.path, b.path))
    .map((i) => ({ path: i.path, hash: i.hash.toLowerCase() }));
  return {
    version: spec.version,
    module: spec.module.toLowerCase(),
    entry: spec.entry,
    args: spec.args,
    env: spec.env,
    inputs,
    limits: { ...spec.limits },
    redundancy: spec.redundancy,
  };
}

/** The canonical JSON text of a spec: what `POST /v1/specs` takes and `specHash` hashes. */
export function canonicalSpec(spec: JobSpec): string {
  return canonicalJson(specJson(spec));
}

/** `specHash = keccak256(canonical JSON)`, the value `createComputeJob` locks funds against. */
export function specHash(spec: JobSpec | string): Hex {
  return keccak256(utf8.encode(typeof spec === 'string' ? spec : canonicalSpec(spec)));
}

/** keccak256 of a blob: its name in the coordinator's blob store. */
export function blobHash(bytes: Uint8Array): Hex {
  return keccak256(bytes);
}

/** Number of chunks of a file of `size` bytes. */
export function chunkCount(size: number): number {
  return Math.ceil(size / CHUNK_SIZE);
}

/** `keccak256(0x00 ‖ chunk)`, the chunk zero padded to CHUNK_SIZE. */
export function leafHash(chunk: Uint8Array): Uint8Array {
  const buf = new Uint8Array(CHUNK_SIZE + 1);
  buf.set(chunk.subarray(0, CHUNK_SIZE), 1);
  return keccak256(buf, 'bytes');
}

/** `keccak256(0x01 ‖ left ‖ right)`. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  const buf = new Uint8Array(65);
  buf[0] = 1;
  buf.set(left, 1);
  buf.set(right, 33);
  return keccak256(buf, 'bytes');
}

/**
 * The storage Merkle root: index-ordered pairs, domain-separated leaves and nodes, and a level with an
 * odd count promotes its last node unchanged (rs_merkle's rule, as `qor_protocol::merkle`).
 */
export function merkleRoot(data: Uint8Array): Hex {
  if (data.length === 0) throw new Error('the file is empty; a storage deal needs at least one byte');
  let level: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += CHUNK_SIZE) level.push(leafHash(data.subarray(at, at + CHUNK_SIZE)));
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(i + 1 < level.length ? nodeHash(level[i], level[i + 1]) : level[i]);
    level = next;
  }
  return bytesToHex(level[0]);
}

/** Checks a chunk's path against a root, binding its index (as `qor_protocol::merkle::verify`). */
export function verifyChunk(root: Hex, chunks: number, index: number, chunk: Uint8Array, path: Hex[]): boolean {
  if (index >= chunks) return false;
  let node = leafHash(chunk);
  let at = index;
  let width = chunks;
  let used = 0;
  while (width > 1) {
    const promoted = at === width - 1 && width % 2 === 1;
    if (!promoted) {
      if (used >= path.length) return false;
      const sibling = toBytes(path[used++]);
      node = at % 2 === 0 ? nodeHash(node, sibling) : nodeHash(sibling, node);
    }
    at = Math.floor(at / 2);
    width = Math.ceil(width / 2);
  }
  return used === path.length && bytesToHex(node) === root.toLowerCase();
}

function u32be(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

function u64be(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

/**
 * `resultDigest`: keccak256("QOR/result/v1" ‖ u32be(exit) ‖ u64be(|stdout|) ‖ stdout ‖
 * ("F" ‖ u64be(|path|) ‖ path ‖ u64be(|data|) ‖ data)* ‖ "E" ‖ u64be(files)), files in byte order of path.
 */
export function resultDigest(exitCode: number, stdout: Uint8Array, files: [string, Uint8Array][]): Hex {
  const sorted = [...files].sort((a, b) => compareUtf8(a[0], b[0]));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i][0] === sorted[i - 1][0]) throw new Error(`output file \`${sorted[i][0]}\` appears twice`);
  }
  const parts: Uint8Array[] = [utf8.encode('QOR/result/v1'), u32be(exitCode), u64be(stdout.length), stdout];
  for (const [path, data] of sorted) {
    const p = utf8.encode(path);
    parts.push(utf8.encode('F'), u64be(p.length), p, u64be(data.length), data);
  }
  parts.push(utf8.encode('E'), u64be(sorted.length));
  return keccak256(concat(parts));
}
