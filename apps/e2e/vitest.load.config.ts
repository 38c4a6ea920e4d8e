import { defineConfig } from "vitest/config";

// Long-running load and soak tests (`pnpm test:load`): not part of `pnpm test`. One file at a
// time, inside the same isolated network namespace as the e2e tests (setup/global.ts checks it).
export default defineConfig({
  test: {
    environment: "node",
    include: ["src/**/*.load.test.ts"],
    globalSetup: ["src/setup/global.ts"],
    testTimeout: 30 * 60_000,
    hookTimeout: 180_000,
    teardownTimeout: 30_000,
    fileParallelism: false,
  },
});
