import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Built with `npm run build:web` (scripts/build-web.ts, root web/). The client is served by parley itself (src/server/web-client.ts) from web/dist; `npm run dev:web` runs
// Vite's dev server with the API proxied to a parley on localhost:3000.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Chromium, Firefox and Safari support modulepreload; the polyfill would only add bytes.
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: {
    proxy: { '/v1': { target: 'http://127.0.0.1:3000', ws: true }, '/healthz': 'http://127.0.0.1:3000' },
  },
});
