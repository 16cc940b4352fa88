import { defineConfig } from 'vite';

// Two pages: the employee client (served at / on the api port) and the
// admin console (served at / on the admin port). The output is committed
// and CI rebuilds and diffs it, so it must be deterministic: no
// sourcemaps, content-hashed names, no inline scripts (strict CSP).
export default defineConfig({
  base: '/',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2022',
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    cssCodeSplit: true,
    reportCompressedSize: true,
    rolldownOptions: {
      input: {
        index: 'index.html',
        console: 'console.html',
      },
      output: {
        entryFileNames: 'assets/[name]-[hash].js',
        chunkFileNames: 'assets/[name]-[hash].js',
        assetFileNames: 'assets/[name]-[hash][extname]',
      },
    },
  },
  server: {
    proxy: {
      '/v1': { target: 'https://127.0.0.1:8443', secure: false, ws: true, changeOrigin: true },
    },
  },
  preview: {
    proxy: {
      '/v1': { target: 'https://127.0.0.1:8443', secure: false, ws: true, changeOrigin: true },
    },
  },
});
