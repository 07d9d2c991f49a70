import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // web/src: the web client's own logic (its screens are tested in a browser, test/e2e).
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'web/src/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
