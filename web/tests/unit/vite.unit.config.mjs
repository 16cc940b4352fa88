// Bundles the unit tests (TypeScript) for Node: `npm run test:unit`.
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: here('../..'),
  logLevel: 'warn',
  build: {
    ssr: true,
    outDir: here('../../.unit-build'),
    emptyOutDir: true,
    sourcemap: false,
    minify: false,
    target: 'node20',
    rolldownOptions: {
      input: {
        cursor: here('./cursor.test.ts'),
        messages: here('./messages.test.ts'),
        virtual: here('./virtual.test.ts'),
        audit: here('./audit.test.ts'),
        office: here('./office.test.ts'),
        'console-office': here('./console-office.test.ts'),
        files: here('./files.test.ts'),
        external: here('./external.test.ts'),
      },
      output: { entryFileNames: '[name].test.mjs' },
    },
  },
});
