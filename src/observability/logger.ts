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

// Field names repeat endlessly (every request line has the same ones): each is tested once.
const secretNames = new Map<string, boolean>();
function isSecretName(name: string): boolean {
  let secret = secretNames.get(name);
  if (secret === undefined) {
    secret = SECRET_FIELD.test(name) && !name.endsWith("_id");
    if (secretNames.size < 10_000) secretNames.set(name, secret);
  }
  return secret;
}

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== "object") return value;
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const k in value) {
    if (!Object.hasOwn(value, k)) continue;
    const v = (value as Record<string, unknown>)[k];
    out[k] = isSecretName(k) ? "[redacted]" : typeof v === "object" && v !== null ? redact(v, depth + 1) : v;
  }
  return out;
}

const stdoutSink: LogSink = (line) => console.log(line);

/** One class, so a per-request child logger is one small object, not a set of closures. */
class JsonLogger implements Logger {
  #bound: LogFields | undefined;

  constructor(
    private readonly threshold: number,
    private readonly sink: LogSink,
    private readonly now: () => Date,
    private readonly inherited: LogFields,
    private readonly own?: LogFields,
  ) {}

  /** A child's fields are merged with its parent's when it first writes (most request loggers never do). */
  private get bound(): LogFields {
    this.#bound ??= this.own ? { ...this.inherited, ...this.own } : this.inherited;
    return this.#bound;
  }

  private write(level: LogLevel, msg: string, fields?: LogFields) {
    if (LEVEL_RANK[level] < this.threshold) return;
    const record = redact({ time: this.now().toISOString(), level, msg, ...this.bound, ...fields });
    let line: string;
    try {
      line = JSON.stringify(record);
    } catch {
      line = JSON.stringify({ time: this.now().toISOString(), level, msg, note: "fields were not serialisable" });
    }
    this.sink(line);
  }

  debug(msg: string, fields?: LogFields) {
    this.write("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields) {
    this.write("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields) {
    this.write("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields) {
    this.write("error", msg, fields);
  }
  child(fields: LogFields): Logger {
    return new JsonLogger(this.threshold, this.sink, this.now, this.bound, fields);
  }
  enabled(level: LogLevel) {
    return LEVEL_RANK[level] >= this.threshold;
  }
}

export function createLogger(options: { level?: LogLevel | "silent"; sink?: LogSink; base?: LogFields; now?: () => Date }): Logger {
  return new JsonLogger(
    LEVEL_RANK[options.level ?? "info"],
    options.sink ?? stdoutSink,
    options.now ?? (() => new Date()),
    options.base ?? {},
  );
}
