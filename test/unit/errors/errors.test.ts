import { describe, expect, it } from "vitest";
import { BackupsOffError, ConfigError, NoGoodSnapshotError } from "../../../agent/errors.js";
import { exitNameFor } from "../../../agent/exit-codes.js";

describe("errors and their exits", () => {
  it("BackupsOffError names itself and exits as the input error it is", () => {
    const error = new BackupsOffError();
    expect(error.name).toBe("BackupsOffError");
    expect(error).toBeInstanceOf(ConfigError);
    expect(exitNameFor(error)).toBe("INVALID_INPUT");
  });

  it("a restore without a good snapshot is matched by its class, not by a name string", () => {
    expect(exitNameFor(new NoGoodSnapshotError("none verified"))).toBe("REFUSED");
    const lookalike = Object.assign(new Error("not ours"), { name: "NoGoodSnapshotError" });
    expect(exitNameFor(lookalike)).toBe("ERROR");
  });
});
