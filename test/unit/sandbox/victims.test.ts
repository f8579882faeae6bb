// The sandbox's scale-in victim choice follows AWS's default termination policy.
import { describe, expect, it } from "vitest";
import { chooseVictim } from "../../sandbox/aws-gaps.js";

const NOW = 10_000_000_000;
const inst = (id: string, zone: string, templateVersion = 1) => ({
  id,
  zone,
  lifecycleState: "InService",
  templateVersion,
  protectedFromScaleIn: false,
});

describe("chooseVictim (AWS's default termination policy)", () => {
  it("takes from the zone with the most instances first, whatever their age or template", () => {
    const all = [inst("a1", "a", 1), inst("a2", "a", 2), inst("b1", "b", 1)];
    const seen = { a1: NOW - 10_000, a2: NOW - 20_000, b1: NOW - 3_500_000 };
    const v = chooseVictim(all, all, (id) => seen[id as keyof typeof seen], NOW);
    expect(v?.id).toBe("a1");
  });

  it("then the oldest launch template version", () => {
    const all = [inst("a1", "a", 3), inst("a2", "a", 2), inst("b1", "b", 3), inst("b2", "b", 3)];
    const v = chooseVictim(all, all, () => NOW - 1000, NOW);
    expect(v?.id).toBe("a2");
  });

  it("then the one closest to its next billing hour (most seconds into its hour)", () => {
    const all = [inst("a1", "a"), inst("a2", "a"), inst("a3", "a")];
    // 59 min, 1 h 1 min and 30 min into their lives: a1 is 3540 s into its hour, a2 60 s, a3 1800 s.
    const seen = { a1: NOW - 3_540_000, a2: NOW - 3_660_000, a3: NOW - 1_800_000 };
    const v = chooseVictim(all, all, (id) => seen[id as keyof typeof seen], NOW);
    expect(v?.id).toBe("a1");
  });

  it("then at random among equals, and never one that is not a candidate", () => {
    const all = [inst("a1", "a"), inst("a2", "a"), inst("a3", "a")];
    const candidates = all.slice(1);
    expect(
      chooseVictim(
        all,
        candidates,
        () => NOW,
        NOW,
        () => 0,
      )?.id,
    ).toBe("a2");
    expect(
      chooseVictim(
        all,
        candidates,
        () => NOW,
        NOW,
        () => 0.99,
      )?.id,
    ).toBe("a3");
    expect(chooseVictim(all, [], () => NOW, NOW)).toBeUndefined();
  });
});
