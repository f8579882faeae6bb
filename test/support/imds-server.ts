// A real IMDSv2 endpoint on 127.0.0.1 for tests: the token flow, metadata paths, and faults.
// It accepts `//latest/...` as well, since @aws-sdk/ec2-metadata-service asks for that.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface ImdsBehaviour {
  metadata: Record<string, string>;
  /** Status to answer the token PUT with (200 by default). */
  tokenStatus?: number;
  /** Status to answer a path with instead of its value, for the next `times` requests. */
  faults?: Record<string, { status: number; times: number }>;
  /** Delay every answer by this many ms. */
  delayMs?: number;
}

export interface ImdsServer {
  url: string;
  requests: string[];
  behaviour: ImdsBehaviour;
  close(): Promise<void>;
}

/** `listen`: a fixed address (a machine's IMDS keeps its URL across the machine's reboots); default 127.0.0.1, any port. */
export async function startImds(
  behaviour: ImdsBehaviour,
  listen: { host: string; port: number } = { host: "127.0.0.1", port: 0 },
): Promise<ImdsServer> {
  const tokens = new Set<string>();
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "").replace(/^\/+/, "/");
    requests.push(`${req.method} ${path}`);
    const answer = (status: number, body = "") => {
      setTimeout(() => {
        res.writeHead(status, { "content-type": "text/plain" });
        res.end(body);
      }, behaviour.delayMs ?? 0);
    };
    if (req.method === "PUT" && path === "/latest/api/token") {
      if (!req.headers["x-aws-ec2-metadata-token-ttl-seconds"]) return answer(400);
      if ((behaviour.tokenStatus ?? 200) !== 200) return answer(behaviour.tokenStatus ?? 500);
      const token = `token-${tokens.size + 1}`;
      tokens.add(token);
      return answer(200, token);
    }
    if (req.method !== "GET") return answer(405);
    const header = req.headers["x-aws-ec2-metadata-token"];
    if (typeof header !== "string" || !tokens.has(header)) return answer(401);
    const key = path.replace(/^\/latest\/meta-data\//, "");
    const fault = behaviour.faults?.[key];
    if (fault && fault.times > 0) {
      fault.times--;
      return answer(fault.status);
    }
    const value = behaviour.metadata[key];
    return value === undefined ? answer(404) : answer(200, value);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${listen.host}:${port}`,
    requests,
    behaviour,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export const NODE_METADATA = {
  "instance-id": "i-0123456789abcdef0",
  "local-ipv4": "127.0.1.4",
  "placement/availability-zone": "eu-west-1a",
  "placement/region": "eu-west-1",
};
