import { defineConfig } from 'vite';

// `npm run dev` proxies the API to a coordinator (QOR_COORDINATOR, default the devnet's).
export default defineConfig({
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 4096 },
  server: { proxy: { '/v1': process.env.QOR_COORDINATOR ?? 'http://127.0.0.1:8645' } },
});
