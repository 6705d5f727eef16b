import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      '@fleetwave/shared': src('./shared/src/index.ts'),
      '@fleetwave/agent': src('./agent/src/index.ts'),
      '@fleetwave/controller': src('./controller/src/index.ts'),
    },
  },
  test: {
    include: ['{shared,agent,controller}/src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // names the PostgreSQL databases the end-to-end tests make after the run, and drops them at its end
    globalSetup: ['test/global-setup.ts'],
  },
});
