// One JSON object per line. The keys are a contract: level, ts, msg, instance_id (the instance
// the agent runs on), member_id and target_instance_id (what an action is about), action, reason,
// rule (the safety rule that held something back). Extra keys may be added; these never change meaning.
import type { Writable } from "node:stream";

export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LogFields {
  instance_id?: string;
  member_id?: string;
  target_instance_id?: string;
  action?: string;
  reason?: string;
  rule?: string;
  [key: string]: unknown;
}

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export function createLogger(
  out: Writable,
  options: { level?: Level; base?: LogFields; now?: () => Date } = {},
): Logger {
  const min = ORDER[options.level ?? "info"];
  const base = options.base ?? {};
  const now = options.now ?? (() => new Date());
  const write = (level: Level, msg: string, fields?: LogFields) => {
    if (ORDER[level] < min) return;
    out.write(`${JSON.stringify({ level, ts: now().toISOString(), msg, ...base, ...fields })}\n`);
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (fields) => createLogger(out, { ...options, base: { ...base, ...fields } }),
  };
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
