// Pinned runtimes for script jobs, as qor-protocol pins them (src/runtime.rs; the Vitest suite checks
// this table against its vectors). The web app serves each module at `/runtimes/<file>` (copied from
// the npm package the root lockfile pins by sha512); the page hashes it before using it, so a module
// with other bytes is refused whoever served it.

import type { Hex } from 'viem';

import { blobHash } from './hash';

export interface Runtime {
  name: string;
  version: string;
  extension: string;
  module: Hex;
  size: number;
  file: string;
}

export const RUNTIMES: Runtime[] = [
  {
    name: 'python',
    version: '3.12.0',
    extension: 'py',
    module: '0x6125086d843ddcfa37a4a46f61629a34733087970cafb4a3824ef0a1a6293597',
    size: 26_267_204,
    file: 'python-3.12.0.wasm',
  },
];

/** The runtime a script named `fileName` runs on, by its extension. */
export function runtimeFor(fileName: string): Runtime | undefined {
  const dot = fileName.lastIndexOf('.');
  if (dot < 0) return undefined;
  const ext = fileName.slice(dot + 1).toLowerCase();
  return RUNTIMES.find((r) => r.extension === ext);
}

/** The module's arguments that run `script` (under /in) with the buyer's `args`. */
export function runtimeArgs(script: string, args: string[]): string[] {
  return ['-B', `/in/${script}`, ...args];
}

/** The runtime's module, fetched from this app's origin and checked against the pin. */
export async function loadRuntime(rt: Runtime): Promise<Uint8Array> {
  const r = await fetch(`/runtimes/${rt.file}`);
  if (!r.ok) throw new Error(`The ${rt.name} ${rt.version} runtime is not served here (${r.status}); use \`qor job run\` instead.`);
  const bytes = new Uint8Array(await r.arrayBuffer());
  if (bytes.length !== rt.size || blobHash(bytes) !== rt.module) {
    throw new Error(`The ${rt.name} runtime served here is not the pinned module (${bytes.length} bytes, hash ${blobHash(bytes)}); not using it.`);
  }
  return bytes;
}
