// "Exactly one cluster per marker", checked on a model of 2-5 nodes booting over a shared world
// (one-cluster-model.ts): fast-check picks the interleaving, stale reads, listings missing an
// instance, crashes mid-apply, restarts, instances leaving and replacements. After every step: at
// most one cluster serves, every serving node holds that cluster's token, and no new empty cluster
// was made while evidence of a former one existed.
import { test } from "@fast-check/vitest";
import { describe } from "vitest";
import { modelSpec, runs } from "./arbitraries.js";
import { InvariantViolation, newWorld, step } from "./one-cluster-model.js";

describe("one cluster per marker (model of N booting nodes)", () => {
  test.prop([modelSpec], { numRuns: runs(300) })(
    "no two clusters serve, every member holds its cluster's token, no empty cluster over evidence of a former one",
    (spec) => {
      const world = newWorld(spec);
      for (const cmd of spec.commands) {
        try {
          step(world, cmd);
        } catch (error) {
          if (!(error instanceof InvariantViolation)) throw error;
          throw new InvariantViolation(`${error.message}\n  after:\n    ${world.log.join("\n    ")}`);
        }
      }
    },
  );
});
