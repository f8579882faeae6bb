// The restore runs from etcd-agent-boot.service (boot's restore path calls etcd-restore). On Fedora
// CoreOS etcd-restore runs podman, which needs a mount namespace and writes /var/lib/containers:
// under the boot unit's hardening (RestrictNamespaces=yes, a 3-capability bounding set,
// ProtectSystem=strict) both are refused (checked in a booted machine, docs/node.md), so the wrapper
// hands the container to systemd (`systemd-run --wait --pipe`: a transient unit of its own, the
// output and the exit code passed back). On Flatcar docker is a client of dockerd (a socket), which
// the hardening allows, so it runs as it is.
import { describe, expect, it } from "vitest";
import { renderNodeConfig, renderUnits } from "../../../ignition/render.js";

const base = {
  arch: "x64" as const,
  binaryUrl: "s3://b/etcd-agent-linux-x64",
  binarySha512: "a".repeat(128),
  agent: { domain: "etcd.internal", hostedZoneId: "Z0123456789ABC" },
};

function wrapper(os: "flatcar" | "fcos"): string {
  const cfg = renderNodeConfig({ ...base, os }) as unknown as {
    storage: { files: Array<{ path: string; contents: { source: string } }> };
  };
  const file = cfg.storage.files.find((f) => f.path.endsWith("/etcd-restore"));
  return decodeURIComponent((file?.contents.source ?? "").replace(/^data:[^,]*,/, ""));
}

describe("etcd-restore runs outside the boot unit's sandbox where it must", () => {
  it("FCOS: podman runs in a transient unit of its own (systemd-run --wait --pipe), not under the boot unit's hardening", () => {
    const boot = renderUnits("fcos").find((u) => u.name === "etcd-agent-boot.service")?.contents ?? "";
    // Why: what podman needs is refused in the boot unit.
    expect(boot).toContain("RestrictNamespaces=yes");
    expect(boot).toContain("ProtectSystem=strict");
    const exec = wrapper("fcos")
      .split("\n")
      .find((l) => l.startsWith("exec "));
    expect(exec).toMatch(
      /^exec systemd-run --quiet --wait --pipe --collect .*podman run --rm --network none /,
    );
  });

  it("Flatcar: docker, a client of dockerd, runs from the wrapper itself", () => {
    expect(wrapper("flatcar")).toMatch(/\nexec docker run --rm --network none /);
  });
});
