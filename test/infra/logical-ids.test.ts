// A deployed stack must not replace anything when the construct's code is rearranged: every
// resource keeps its logical ID and type (CDK derives the ID from the construct path), and a new
// resource is a deliberate change to the baseline, not a side effect.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BASELINE, CONFIGURATIONS, type LogicalIds, synthesizeLogicalIds } from "./logical-ids.js";

const baseline = JSON.parse(readFileSync(BASELINE, "utf8")) as LogicalIds;
const synthesized = synthesizeLogicalIds();
const REWRITE =
  "if the change is deliberate: npx tsx test/infra/logical-ids.ts --write, and say why in the commit";

describe("logical IDs against test/infra/logical-ids.baseline.json", () => {
  it("the baseline covers exactly the configurations synthesized", () => {
    expect(Object.keys(baseline).sort()).toEqual(Object.keys(CONFIGURATIONS).sort());
  });

  it.each(
    Object.keys(CONFIGURATIONS),
  )("%s: every resource keeps its logical ID and type, none is new", (name) => {
    const before = baseline[name] ?? {};
    const now = synthesized[name] ?? {};
    const gone = Object.keys(before)
      .filter((id) => now[id] !== before[id])
      .map(
        (id) =>
          `${id} (${before[id]}) ${now[id] ? `is now a ${now[id]}` : "is gone: CloudFormation would delete it"}`,
      );
    const added = Object.keys(now)
      .filter((id) => before[id] === undefined)
      .map((id) => `${id} (${now[id]}) is new`);
    expect({ changed: gone, added, hint: gone.length + added.length > 0 ? REWRITE : "" }).toEqual({
      changed: [],
      added: [],
      hint: "",
    });
  });
});
