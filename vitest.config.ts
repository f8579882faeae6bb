import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    reporters: ["default", "./test/support/summary-reporter.ts"],
    // Two files at a time, whatever the project: the real-etcd files wait far more than they compute,
    // and each uses its own 127.0.N.0/24 (test/support/subnets.test.ts keeps them disjoint), so two
    // of them side by side share nothing but the CPU. On this 2-core machine the default would be 1.
    maxWorkers: 2,
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          // The real entry point in child processes, as an operator runs it.
          name: "cli",
          include: ["test/cli/**/*.test.ts"],
          testTimeout: 90_000,
        },
      },
      {
        test: {
          // The node definition under the real tools: ignition-validate and systemd-analyze verify.
          name: "node-config",
          include: ["test/node-config/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          // The CDK app: resources, IAM, user data under ignition-validate, cdk-nag.
          name: "infra",
          include: ["test/infra/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          // The single executables from npm run build:binary.
          name: "binary",
          include: ["test/binary/**/*.test.ts"],
          testTimeout: 90_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          // The x64 binary against moto and real etcd, processes as on a node.
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          // Two files share the 2 cores: a scenario that takes 115 s alone can take 130 s beside
          // another (join-faults did). Each wait inside a scenario keeps its own, tighter bound.
          testTimeout: 300_000,
          hookTimeout: 240_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          // Real etcd processes on 127.0.x.y (a /24 per file), generous but bounded timeouts.
          testTimeout: 240_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
