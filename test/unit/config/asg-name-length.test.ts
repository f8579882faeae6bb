// The cluster marker is one TXT string (at most 255 characters) and its token embeds the ASG name:
// a name too long for it is refused where it is set, not when the first claim fails on Route53.
import { describe, expect, it } from "vitest";
import { checkAsgNameLength, parseConfig } from "../../../agent/config/config.js";
import { ConfigError } from "../../../agent/errors.js";
import { tokenFor } from "../../../agent/planner/boot-plan.js";
import { encodeMarker, MAX_ASG_NAME_LENGTH } from "../../../agent/planner/marker.js";

const base = { domain: "etcd.internal", hostedZoneId: "Z0123456789ABC", plaintext: true };
const longestId = "i-0123456789abcdef0";

describe("the ASG name's length against the marker", () => {
  it("the longest accepted name still makes the longest marker fit one TXT string", () => {
    const asg = "a".repeat(MAX_ASG_NAME_LENGTH);
    expect(() => checkAsgNameLength(asg)).not.toThrow();
    const raw = encodeMarker({
      state: "restoring",
      token: tokenFor(asg, longestId),
      claimant: longestId,
      cluster: "18446744073709551615",
    });
    expect(raw.length - 2).toBe(255);
  });

  it("one character more is refused in config, naming the length, the limit and the fix", () => {
    const asg = "a".repeat(MAX_ASG_NAME_LENGTH + 1);
    expect(() => parseConfig({ ...base, asgName: asg })).toThrow(ConfigError);
    expect(() => parseConfig({ ...base, asgName: asg })).toThrow(
      new RegExp(`${MAX_ASG_NAME_LENGTH + 1} characters.*up to ${MAX_ASG_NAME_LENGTH}: use a shorter`),
    );
    // And the marker itself would not fit.
    expect(() =>
      encodeMarker({
        state: "restoring",
        token: tokenFor(asg, longestId),
        claimant: longestId,
        cluster: "18446744073709551615",
      }),
    ).toThrow(/over the 255/);
  });
});
