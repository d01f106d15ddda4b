import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Kernel tests build tables in their own namespaces; running files one at a time keeps
    // two big tables from competing for the 2 CPUs and the global conntrack limit.
    fileParallelism: false,
    pool: 'forks',
    // The streaming test measures retained memory, so it needs to run the GC itself.
    poolOptions: { forks: { execArgv: ['--expose-gc'] } },
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
    // Removes what the test processes left in /tmp (their purge-lock directories).
    globalSetup: ['test/helpers/globalTeardown.ts'],
  },
});
