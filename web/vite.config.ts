// The dashboard's build: web/ → dist/web (served by the Forge server, see src/api/web.routes.ts).
// No React plugin: esbuild compiles TSX with the automatic runtime, which is all the build needs.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: true,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev:web`: the dashboard with hot reload against a Forge server on :8080.
    proxy: { '/v1': { target: process.env.FORGE_URL ?? 'http://127.0.0.1:8080', changeOrigin: false } },
  },
});
