/**
 * Structured JSON logs: one object per line. A sink is injectable so tests can capture lines and
 * assert that no secret ever reaches them.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;
export type LogSink = (line: string) => void;

const LEVEL_RANK: Record<LogLevel | "silent", number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

// Values under these field names never reach a log line, whatever the caller passed.
const SECRET_FIELD = /(authorization|api[-_]?key|secret|password|passwd|token|cookie|private[-_]?key)/i;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  enabled(level: LogLevel): boolean;
}

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== "object") return value;
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_FIELD.test(k) && !k.endsWith("_id") ? "[redacted]" : redact(v, depth + 1);
  }
  return out;
}

const stdoutSink: LogSink = (line) => console.log(line);

export function createLogger(options: { level?: LogLevel | "silent"; sink?: LogSink; base?: LogFields; now?: () => Date }): Logger {
  const threshold = LEVEL_RANK[options.level ?? "info"];
  const sink = options.sink ?? stdoutSink;
  const now = options.now ?? (() => new Date());
  const base = options.base ?? {};

  const make = (bound: LogFields): Logger => {
    const write = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (LEVEL_RANK[level] < threshold) return;
      const record = redact({ time: now().toISOString(), level, msg, ...bound, ...fields });
      let line: string;
      try {
        line = JSON.stringify(record);
      } catch {
        line = JSON.stringify({ time: now().toISOString(), level, msg, note: "fields were not serialisable" });
      }
      sink(line);
    };
    return {
      debug: (m, f) => write("debug", m, f),
      info: (m, f) => write("info", m, f),
      warn: (m, f) => write("warn", m, f),
      error: (m, f) => write("error", m, f),
      child: (fields) => make({ ...bound, ...fields }),
      enabled: (level) => LEVEL_RANK[level] >= threshold,
    };
  };
  return make(base);
}
