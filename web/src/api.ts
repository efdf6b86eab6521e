// The coordinator's HTTP API (same origin: the coordinator serves this app). Errors keep the
// coordinator's code, field and message, so the page can say what was wrong.

import type { Hex } from 'viem';

import { blobHash } from './hash';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

let token: string | undefined;

/** Uses this session token (from Sign-In with Ethereum) on every request. */
export function setSessionToken(t: string | undefined): void {
  token = t;
}

export async function api<T = Record<string, unknown>>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  let r: Response;
  try {
    r = await fetch(path, { ...init, headers, credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `the coordinator did not answer (${(e as Error).message}); is it running?`);
  }
  const text = await r.text();
  let body: unknown = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {}
  if (!r.ok) {
    const err = (body as { error?: { code?: string; message?: string; field?: string } } | undefined)?.error;
    throw new ApiError(r.status, err?.code ?? `http_${r.status}`, err?.message ?? (text || r.statusText), err?.field);
  }
  return body as T;
}

export const postJson = <T = Record<string, unknown>>(path: string, body: unknown) =>
  api<T>(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** Uploads bytes to the content-addressed blob store; answers their keccak256. */
export async function putBlob(bytes: Uint8Array): Promise<Hex> {
  const hash = blobHash(bytes);
  await api(`/v1/blobs/${hash}`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: bytes as BodyInit });
  return hash;
}

/** [`putBlob`], unless the coordinator holds a blob of this hash already (a runtime every Python job names is sent once). */
export async function putBlobOnce(bytes: Uint8Array): Promise<Hex> {
  const hash = blobHash(bytes);
  const held = await fetch(`/v1/blobs/${hash}`, { method: 'HEAD' }).then((r) => r.ok, () => false);
  return held ? hash : putBlob(bytes);
}

/** A blob's bytes, checked against their name. */
export async function getBlob(hash: Hex): Promise<Uint8Array> {
  const r = await fetch(`/v1/blobs/${hash}`);
  if (!r.ok) throw new ApiError(r.status, 'blob', `blob ${hash}: the coordinator answered ${r.status}`);
  const bytes = new Uint8Array(await r.arrayBuffer());
  if (blobHash(bytes) !== hash.toLowerCase()) throw new Error(`blob ${hash}: the bytes hash to ${blobHash(bytes)}`);
  return bytes;
}

export interface ChainInfo {
  chainId: number;
  jobEscrow: Hex;
  providerRegistry: Hex;
  verifierCommittee: Hex;
  storageMarket: Hex;
  deployBlock: number;
  rpcUrl: string | null;
  walletConnectProjectId: string | null;
  confirmations: number;
  chainBlock: number;
}

export interface TimelineEntry {
  kind: string;
  actor: string;
  at: number;
  block: number | null;
  detail: Record<string, unknown> | null;
}

export interface Receipt {
  worker: Hex;
  /** The spec the worker ran (part of what it signed): the job's on-chain specHash. */
  specHash: Hex;
  resultDigest: Hex;
  stdoutHash: Hex;
  exitCode: number;
  fuelUsed: number;
  outputs: { path: string; hash: Hex }[];
  receivedAt: number;
}

export interface Job {
  jobId: string;
  specHash: Hex;
  buyer: Hex;
  budget: string;
  deadline: number;
  redundancy: number;
  status: string;
  reason: string | null;
  preferredProvider: Hex;
  token: Hex;
  specUploaded: boolean;
  receipts: Receipt[];
  /** leased (offered), accepted, sealed, revealed, lapsed, failed (took the lease, never sealed), released. */
  replicas: { provider: Hex; status: string; seal: Hex | null; acceptance: Hex | null; sealSignature: Hex | null; assignment: number }[];
  timeline: TimelineEntry[];
}

export interface Provider {
  address: Hex;
  stake: string;
  pricePerFuel: string;
  capacity: number;
  busy: number;
  live: boolean;
  region: string;
  completed: number;
  failed: number;
  slashed: number;
  lastHeartbeat: number | null;
}

export interface Deal {
  dealId: string;
  buyer: Hex;
  provider: Hex | null;
  offeredTo: Hex | null;
  status: string;
  chainStatus: string;
  root: Hex;
  size: number;
  chunks: number;
  periods: number;
  periodLength: number;
  pricePerPeriod: string;
  startBlock: number | null;
  challenges: { period: number; chunkIndexes: number[]; status: string; issuedBy: string; issuedAt: number; answeredAt: number | null }[];
  timeline: TimelineEntry[];
}
