import { describe, expect, it } from "vitest";
import { hasQuorum, quorumAfterRemoval, quorumSize } from "../../../agent/planner/quorum.js";

describe("quorumSize", () => {
  it.each([
    [1, 1],
    [2, 2],
    [3, 2],
    [4, 3],
    [5, 3],
    [7, 4],
  ])("%i voters need %i", (voters, needed) => {
    expect(quorumSize(voters)).toBe(needed);
  });

  it("rejects a negative count", () => {
    expect(() => quorumSize(-1)).toThrow(/non-negative integer, got -1/);
  });
});

describe("hasQuorum", () => {
  it.each([
    [{ voters: 3, healthyVoters: 2 }, true],
    [{ voters: 3, healthyVoters: 1 }, false],
    [{ voters: 0, healthyVoters: 0 }, false],
  ])("%o -> %s", (counts, expected) => {
    expect(hasQuorum(counts)).toBe(expected);
  });
});

describe("quorumAfterRemoval", () => {
  it.each([
    [
      "a dead voter of 3 with 2 healthy",
      { voters: 3, healthyVoters: 2 },
      { isVoter: true, isHealthy: false },
      true,
    ],
    [
      "a healthy voter of 3 with 2 healthy",
      { voters: 3, healthyVoters: 2 },
      { isVoter: true, isHealthy: true },
      false,
    ],
    [
      "a healthy voter of 3 with 3 healthy",
      { voters: 3, healthyVoters: 3 },
      { isVoter: true, isHealthy: true },
      true,
    ],
    [
      "a learner never changes the counts",
      { voters: 1, healthyVoters: 1 },
      { isVoter: false, isHealthy: false },
      true,
    ],
    ["the last voter", { voters: 1, healthyVoters: 1 }, { isVoter: true, isHealthy: true }, false],
    [
      "a healthy voter of 5 with 3 healthy",
      { voters: 5, healthyVoters: 3 },
      { isVoter: true, isHealthy: true },
      false,
    ],
  ])("%s -> %s", (_name, counts, removed, ok) => {
    expect(quorumAfterRemoval(counts, removed).ok).toBe(ok);
  });
});
