import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// Preact's automatic JSX runtime through esbuild: no framework plugin needed offline.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: { outDir: fileURLToPath(new URL('../dist/public', import.meta.url)), emptyOutDir: true, sourcemap: true },
  logLevel: 'warn',
});
