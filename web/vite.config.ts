// The dashboard's build: web/ → dist/web (served by the Forge server, see src/api/web.routes.ts).
// No React plugin: esbuild compiles TSX with the automatic runtime, which is all the build needs.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { defineConfig, type Plugin } from 'vite';

/**
 * Brotli and gzip copies of the built JS/CSS beside the originals: the server sends them
 * (@fastify/static `preCompressed`) to browsers that accept them, without compressing per request.
 */
function precompress(outDir: string): Plugin {
  return {
    name: 'forge-precompress',
    apply: 'build',
    closeBundle() {
      const assets = join(outDir, 'assets');
      for (const name of readdirSync(assets)) {
        if (!/\.(js|css)$/.test(name)) continue;
        const body = readFileSync(join(assets, name));
        writeFileSync(join(assets, `${name}.br`), brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
        writeFileSync(join(assets, `${name}.gz`), gzipSync(body, { level: 9 }));
      }
    },
  };
}

const root = fileURLToPath(new URL('.', import.meta.url));
const outDir = fileURLToPath(new URL('../dist/web', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  esbuild: { jsx: 'automatic' },
  plugins: [precompress(outDir)],
  build: {
    outDir,
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
