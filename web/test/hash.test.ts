// The browser's hashes against the vectors qor-protocol writes from Rust (contracts/test/data): if
// either side changes its encoding, this fails before a buyer funds a spec the market would not find.

import { readFileSync } from 'node:fs';
import { type Hex, bytesToHex, hexToBytes } from 'viem';
import { describe, expect, it } from 'vitest';

import { type JobSpec, canonicalJson, canonicalSpec, merkleRoot, nodeHash, resultDigest, specHash, verifyChunk } from '../src/hash';
import { RUNTIMES, runtimeArgs, runtimeFor } from '../src/runtimes';

const data = (name: string) => JSON.parse(readFileSync(new URL(`../../contracts/test/data/${name}`, import.meta.url), 'utf8'));
const protocol = data('protocol.json');
const merkle = data('merkle.json');

describe('spec hash', () => {
  it('re-encodes the Rust canonical spec to the same text and hash', () => {
    const parsed = JSON.parse(protocol.spec.canonical) as JobSpec;
    expect(canonicalSpec(parsed)).toBe(protocol.spec.canonical);
    expect(specHash(parsed)).toBe(protocol.spec.specHash);
  });

  it('sorts keys and inputs whatever order the form built them in', () => {
    const parsed = JSON.parse(protocol.spec.canonical) as JobSpec;
    const shuffled: JobSpec = {
      redundancy: parsed.redundancy,
      limits: { wallClockMs: parsed.limits.wallClockMs, outputBytes: parsed.limits.outputBytes, memoryBytes: parsed.limits.memoryBytes, fuel: parsed.limits.fuel },
      inputs: [...parsed.inputs].reverse().map((i) => ({ ...i, hash: i.hash.toUpperCase().replace('0X', '0x') as Hex })),
      env: Object.fromEntries(Object.entries(parsed.env).reverse()),
      args: parsed.args,
      entry: parsed.entry,
      module: parsed.module,
      version: parsed.version,
    };
    expect(specHash(shuffled)).toBe(protocol.spec.specHash);
  });

  it('changes when any field changes', () => {
    const parsed = JSON.parse(protocol.spec.canonical) as JobSpec;
    expect(specHash({ ...parsed, redundancy: parsed.redundancy + 1 })).not.toBe(protocol.spec.specHash);
    expect(specHash({ ...parsed, args: [...parsed.args, 'x'] })).not.toBe(protocol.spec.specHash);
  });

  it('refuses numbers Rust and JavaScript would read differently', () => {
    expect(() => canonicalJson(2 ** 53)).toThrow(/exactly/);
    expect(() => canonicalJson(1.5)).toThrow(/exactly/);
  });
});

describe('storage Merkle root', () => {
  it(`matches every Rust vector (${merkle.files.length} files)`, () => {
    expect(merkle.chunkSize).toBe(1024);
    for (const f of merkle.files) {
      expect(merkleRoot(hexToBytes(f.data)), `file of ${f.size} bytes`).toBe(f.root);
    }
  });

  it('checks the Rust proofs and refuses a proof moved to another index', () => {
    let checked = 0;
    for (const f of merkle.files) {
      const bytes = hexToBytes(f.data);
      for (const p of f.proofs) {
        const chunk = bytes.subarray(p.index * 1024, p.index * 1024 + 1024);
        expect(verifyChunk(f.root, f.chunkCount, p.index, chunk, p.path)).toBe(true);
        if (f.chunkCount > 1) {
          const other = (p.index + 1) % f.chunkCount;
          expect(verifyChunk(f.root, f.chunkCount, other, chunk, p.path)).toBe(false);
        }
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10);
  });

  it('hashes an inner node as Rust does', () => {
    expect(bytesToHex(nodeHash(hexToBytes(merkle.node.left), hexToBytes(merkle.node.right)))).toBe(merkle.node.hash);
  });

  it('refuses an empty file', () => {
    expect(() => merkleRoot(new Uint8Array())).toThrow(/empty/);
  });
});

describe('result digest', () => {
  it('matches the Rust vector', () => {
    const r = protocol.result;
    const files = r.files.map(([path, hex]: [string, Hex]) => [path, hexToBytes(hex)] as [string, Uint8Array]);
    expect(resultDigest(r.exitCode, hexToBytes(r.stdout), files)).toBe(r.digest);
    expect(resultDigest(r.exitCode, hexToBytes(r.stdout), [...files].reverse())).toBe(r.digest);
    expect(resultDigest(r.exitCode + 1, hexToBytes(r.stdout), files)).not.toBe(r.digest);
  });
});

describe('pinned runtimes', () => {
  it('are the ones qor-protocol pins, with the same arguments', () => {
    expect(RUNTIMES.length).toBe(protocol.runtimes.length);
    for (const [i, rt] of RUNTIMES.entries()) {
      const pinned = protocol.runtimes[i];
      expect(rt).toEqual({ name: pinned.name, version: pinned.version, extension: pinned.extension, module: pinned.module, size: pinned.size, file: pinned.file });
      expect(runtimeArgs('analysis.py', ['--n', '3'])).toEqual(pinned.args);
    }
    expect(runtimeFor('Analysis.PY')?.name).toBe('python');
    expect(runtimeFor('job.wasm')).toBeUndefined();
  });
});
