import { defineConfig } from "vitest/config";

// e2e tests move real bytes (up to ~200 MiB) over WebRTC on a 2-core machine: long timeouts,
// and one test file at a time so throughput tests never compete with each other.
export default defineConfig({
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
    // Long load/soak tests run in their own step: `pnpm test:load` (vitest.load.config.ts).
    exclude: ["**/node_modules/**", "src/**/*.load.test.ts"],
    globalSetup: ["src/setup/global.ts"],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    teardownTimeout: 30_000,
    fileParallelism: false,
  },
});
