#!/usr/bin/env node
// The local sandbox cluster (moto + real etcd + the etcd-agent binary). See README.md.
import { register } from "tsx/esm/api";

register();
await import("./quiet-warnings.ts");
const { main } = await import("../cli.ts");
process.exit(await main(process.argv.slice(2)));
