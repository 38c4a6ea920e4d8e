/**
 * vitest globalSetup for the e2e tests: refuses to run outside an isolated network namespace,
 * then makes the standard fixture videos once (cached in apps/e2e/.fixtures/).
 */
import { prepareStandardFixtures } from "../support/fixtures.js";
import { assertIsolatedNetwork } from "../support/netns.js";

/** Runs once before all e2e test files. */
export default async function setup(): Promise<void> {
  const report = assertIsolatedNetwork();
  const up = report.interfaces.map(
    (i) => `${i.name}${i.addresses.length ? ` ${i.addresses.join(" ")}` : ""}`,
  );
  console.log(`[e2e] isolated network namespace ${report.namespace ?? "?"}: ${up.join("; ")}`);

  const started = performance.now();
  const fixtures = await prepareStandardFixtures();
  const list = Object.entries(fixtures)
    .map(([name, f]) => `${name} ${(f.bytes / (1024 * 1024)).toFixed(1)} MiB ${f.frames}f`)
    .join(", ");
  console.log(`[e2e] fixtures ready in ${((performance.now() - started) / 1000).toFixed(1)} s: ${list}`);
}
