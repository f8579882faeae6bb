// Prints one plain closing line, "Tests: N passed, N failed, N skipped", after vitest's own summary,
// so that any log reader (CI included) can count the run without parsing vitest's output.
import type { Reporter, TestModule } from "vitest/node";

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else skipped++;
      }
    }
    // The slowest files, so that the run's 45-minute budget can be kept with figures, not guesses.
    const slowest = testModules
      .map((mod) => ({ file: mod.moduleId.replace(`${process.cwd()}/`, ""), ms: mod.diagnostic().duration }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 15);
    if ((slowest[0]?.ms ?? 0) > 10_000) {
      process.stdout.write("\nSlowest files:\n");
      for (const { file, ms } of slowest)
        process.stdout.write(`  ${(ms / 1000).toFixed(0).padStart(5)} s  ${file}\n`);
    }
    process.stdout.write(`\nTests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
