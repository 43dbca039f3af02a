import { z } from "zod";
import { displayPrefixOf, hashApiKeySync, isWellFormedApiKey } from "./auth/key-format";
import { DECISION_PRIORITIES, ROLES, type Role } from "./db/schema";

/**
 * Every setting Arbiter reads, with its default, in one place. The process environment is parsed
 * once at start; nothing else reads `process.env`, so tests build a Config from a plain object.
 */
const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const optionalUrl = (protocols: string[]) =>
  z
    .string()
    .trim()
    .min(1)
    .refine(
      (value) => {
        try {
          return protocols.includes(new URL(value).protocol);
        } catch {
          return false;
        }
      },
      `must be a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}`,
    )
    .optional();

const booleanFlag = z.enum(["true", "false", "1", "0", "yes", "no"]).transform((v) => v === "true" || v === "1" || v === "yes");

/** requests per rate-limit window for one key of a role */
const roleRateLimit = positiveInt.max(100_000_000).default(120_000);

/**
 * `ARBITER_API_KEYS`: comma-separated `role:key` entries (a bare key means admin). Parsed into SHA-256
 * hashes at once, so the Config object never holds a usable key. Keys must be in Arbiter's format
 * (`bun run keys generate` makes one), since the server rejects any other shape before lookup.
 */
const bootstrapKeys = z.string().transform((value, ctx) => {
  const entries: { role: Role; keyHash: string; displayPrefix: string }[] = [];
  for (const [index, item] of value.split(",").entries()) {
    const entry = item.trim();
    if (!entry) continue;
    const separator = entry.indexOf(":");
    const role = separator === -1 ? "admin" : entry.slice(0, separator).trim();
    const key = separator === -1 ? entry : entry.slice(separator + 1).trim();
    if (!(ROLES as readonly string[]).includes(role)) {
      ctx.addIssue({ code: "custom", message: `entry ${index + 1}: role must be one of ${ROLES.join(", ")}` });
      continue;
    }
    // The message never echoes the entry: it is a secret.
    if (!isWellFormedApiKey(key)) {
      ctx.addIssue({ code: "custom", message: `entry ${index + 1}: not a well-formed Arbiter key (arb_ + 49 base62 characters)` });
      continue;
    }
    entries.push({ role: role as Role, keyHash: hashApiKeySync(key), displayPrefix: displayPrefixOf(key) });
  }
  return entries;
});

/**
 * `CORS_ALLOWED_ORIGINS`: comma-separated origins (`https://ops.example`, `http://localhost:5173`)
 * whose pages may call the API from a browser, or `*` for any. Exact origins only: a pattern or a
 * path is a configuration error rather than a silently wider or narrower policy.
 */
const corsOrigins = z.string().transform((value, ctx) => {
  const entries = value
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  if (entries.length === 1 && entries[0] === "*") return ["*"];
  for (const entry of entries) {
    let origin: string | undefined;
    try {
      const url = new URL(entry);
      // URL accepts `*` in a host name; here it could only be a mistaken wildcard.
      if ((url.protocol === "http:" || url.protocol === "https:") && !url.hostname.includes("*")) origin = url.origin;
    } catch {}
    if (origin !== entry) {
      ctx.addIssue({
        code: "custom",
        message: `"${entry}" is not an origin like https://ops.example (scheme, host, optional port; or * alone)`,
      });
      return z.NEVER;
    }
  }
  return entries;
});

export const configSchema = z
  .object({
    PORT: port.default(8100),
    HOST: z.string().trim().min(1).default("127.0.0.1"),
    DATA_DIR: z.string().trim().min(1).default("./.data"),
    /** embedded only: writes are refused (503 insufficient_storage) while less than this is free under DATA_DIR; 0 turns it off */
    DATA_DIR_MIN_FREE_MB: z.coerce.number().int().min(0).max(1_000_000).default(64),
    DATABASE_URL: optionalUrl(["postgres:", "postgresql:"]),
    DATABASE_POOL_MAX: positiveInt.max(1000).default(10),
    /** PostgreSQL cancels a server statement (or lock wait) past this; below REQUEST_TIMEOUT_MS so the statement fails first */
    DATABASE_STATEMENT_TIMEOUT_MS: positiveInt.max(600_000).default(5_000),
    REDIS_URL: optionalUrl(["redis:", "rediss:"]),
    UPSTASH_REDIS_REST_URL: optionalUrl(["https:", "http:"]),
    UPSTASH_REDIS_REST_TOKEN: z.string().min(1).optional(),
    CACHE_PREFIX: z.string().max(64).default("arbiter:"),
    LOG_LEVEL: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
    BODY_LIMIT_BYTES: positiveInt.max(64 * 1024 * 1024).default(1024 * 1024),
    /** a request (other than a long-poll or event stream) not answered by then gets 503 request_timeout */
    REQUEST_TIMEOUT_MS: positiveInt.max(600_000).default(10_000),
    /**
     * A keep-alive connection with no request in progress is closed after this long; on Bun it also
     * bounds a request whose headers trickle in on a reused connection. At most 255 (Bun's limit).
     */
    HTTP_IDLE_TIMEOUT_S: positiveInt.max(255).default(60),
    /** a request head (request line and headers) larger than this is refused with 431 */
    HTTP_MAX_HEADER_BYTES: positiveInt
      .min(1024)
      .max(256 * 1024)
      .default(16 * 1024),
    SHUTDOWN_TIMEOUT_MS: positiveInt.max(600_000).default(10_000),
    HEALTH_CHECK_TIMEOUT_MS: positiveInt.max(60_000).default(1_000),
    RUN_MIGRATIONS: booleanFlag.default(true),
    RELEASE_ID: z.string().max(128).optional(),
    // Observability: GET /metrics answers callers with metrics:read or this bearer token (compared in constant time).
    METRICS_TOKEN: z.string().trim().min(16, "must be at least 16 characters").max(512).optional(),
    /** a second listener serving only GET /metrics (for a scrape network the API port is not on) */
    METRICS_PORT: port.optional(),
    METRICS_HOST: z.string().trim().min(1).optional(),
    // Browsers: no cross-origin access unless origins are named (closed by default).
    CORS_ALLOWED_ORIGINS: corsOrigins.default([]),
    // Telemetry.
    TELEMETRY_RETENTION_DAYS: positiveInt.max(3650).default(30),
    /** how long `bun run audit:retention` keeps authentication events (it runs as the admin role) */
    AUTH_EVENTS_RETENTION_DAYS: positiveInt.max(36500).default(365),
    TELEMETRY_RETENTION_BATCH_SIZE: positiveInt.max(100_000).default(5_000),
    TELEMETRY_RETENTION_INTERVAL_MS: positiveInt.max(86_400_000).default(3_600_000),
    TELEMETRY_SNAPSHOT_CACHE_TTL_SECONDS: positiveInt.max(86_400).default(300),
    // Decisions.
    DECISION_DEFAULT_TTL_SECONDS: positiveInt.max(30 * 86_400).default(3_600),
    DECISION_MAX_TTL_SECONDS: positiveInt.max(365 * 86_400).default(7 * 86_400),
    DECISION_PAYLOAD_MAX_BYTES: positiveInt.max(1024 * 1024).default(64 * 1024),
    DECISION_CACHE_TTL_MS: z.coerce.number().int().min(0).max(3_600_000).default(30_000),
    /** long-polls and event streams one key may hold open at once, per process (429 beyond) */
    STREAMS_PER_KEY_MAX: positiveInt.max(1_000_000).default(1_000),
    DECISION_SWEEP_INTERVAL_MS: positiveInt.max(3_600_000).default(1_000),
    DECISION_SWEEP_BATCH_SIZE: positiveInt.max(10_000).default(100),
    /** HMAC-SHA256 key that signs webhook bodies; without it a decision cannot name a callback_url */
    WEBHOOK_SIGNING_SECRET: z.string().trim().min(32, "must be at least 32 characters").max(512).optional(),
    WEBHOOK_ALLOW_HTTP_LOOPBACK: booleanFlag.default(false),
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: booleanFlag.default(false),
    WEBHOOK_MAX_ATTEMPTS: positiveInt.max(50).default(8),
    WEBHOOK_BACKOFF_BASE_MS: positiveInt.max(3_600_000).default(2_000),
    WEBHOOK_TIMEOUT_MS: positiveInt.max(60_000).default(5_000),
    WEBHOOK_POLL_INTERVAL_MS: positiveInt.max(3_600_000).default(1_000),
    // Notifications (Slack, email) and escalation deadlines.
    /** the address people reach this server at (console links in Slack, action links in email); e.g. https://arbiter.example */
    PUBLIC_URL: optionalUrl(["https:", "http:"]),
    /** a Slack bot token (xoxb-…) with chat:write; without it Slack targets are skipped (and logged) */
    SLACK_BOT_TOKEN: z.string().trim().min(1).optional(),
    /** verifies X-Slack-Signature on the interactions endpoint; without it the endpoint answers 404 */
    SLACK_SIGNING_SECRET: z.string().trim().min(16, "must be at least 16 characters").optional(),
    SLACK_API_URL: optionalUrl(["https:", "http:"]).default("https://slack.com/api/"),
    /** SMTP server for email approvals, e.g. smtps://user:pass@mail.example:465 (the password is never logged) */
    SMTP_URL: optionalUrl(["smtp:", "smtps:"]),
    EMAIL_FROM: z.string().trim().min(3).max(256).default("Arbiter <arbiter@localhost>"),
    /** the secret email action links are signed with (a key derived from it, HMAC-SHA256); required with SMTP_URL */
    EMAIL_LINK_SECRET: z.string().trim().min(32, "must be at least 32 characters").max(512).optional(),
    /** an email action link works for this long (and never after the decision expires) */
    EMAIL_LINK_TTL_SECONDS: positiveInt.max(30 * 86_400).default(86_400),
    /** decisions at this priority or above cannot be approved or rejected from Slack or email: a console link only */
    CONSOLE_ONLY_PRIORITY: z.enum(DECISION_PRIORITIES).default("critical"),
    NOTIFY_POLL_INTERVAL_MS: positiveInt.max(3_600_000).default(1_000),
    NOTIFY_MAX_ATTEMPTS: positiveInt.max(50).default(8),
    NOTIFY_BACKOFF_BASE_MS: positiveInt.max(3_600_000).default(2_000),
    // Identity: bootstrap keys are hashed while the configuration is parsed; raw values are never kept.
    ARBITER_API_KEYS: bootstrapKeys.optional(),
    AUTH_CACHE_TTL_MS: z.coerce.number().int().min(0).max(60_000).default(5_000),
    TRUST_PROXY_HOPS: z.coerce.number().int().min(0).max(10).default(0),
    RATE_LIMIT_WINDOW_MS: positiveInt.max(3_600_000).default(60_000),
    RATE_LIMIT_ADMIN: roleRateLimit,
    RATE_LIMIT_OPERATOR: roleRateLimit,
    RATE_LIMIT_READONLY: roleRateLimit,
    RATE_LIMIT_SERVICE: roleRateLimit,
    RATE_LIMIT_ANONYMOUS: positiveInt.max(100_000_000).default(6_000),
    AUTH_FAILURE_LIMIT: positiveInt.max(1_000_000).default(100),
    AUTH_FAILURE_WINDOW_MS: positiveInt.max(86_400_000).default(300_000),
    TOKEN_ISSUER: z.string().trim().min(1).max(256).default("arbiter"),
    TOKEN_AUDIENCE: z.string().trim().min(1).max(256).default("arbiter-api"),
    TOKEN_TTL_SECONDS: positiveInt.max(86_400).default(900),
    TOKEN_MAX_TTL_SECONDS: positiveInt.max(86_400).default(3_600),
    TOKEN_CLOCK_TOLERANCE_SECONDS: z.coerce.number().int().min(0).max(300).default(5),
    TOKEN_SIGNING_KEY: z.string().trim().min(1).optional(),
    TOKEN_PREVIOUS_SIGNING_KEY: z.string().trim().min(1).optional(),
    /** lifetime of an operator console session (a service token in a cookie); capped at TOKEN_MAX_TTL_SECONDS */
    CONSOLE_SESSION_TTL_SECONDS: positiveInt.max(86_400).default(3_600),
    /** a console page's event stream ends after this long; the browser reconnects (no event lost) and its session is checked again */
    CONSOLE_STREAM_RECHECK_MS: positiveInt.min(1_000).max(3_600_000).default(60_000),
    // HTTPS: a PEM certificate chain and key; with a CA and TLS_CLIENT_AUTH=require, mutual TLS.
    TLS_CERT_FILE: z.string().trim().min(1).optional(),
    TLS_KEY_FILE: z.string().trim().min(1).optional(),
    TLS_CA_FILE: z.string().trim().min(1).optional(),
    TLS_CLIENT_AUTH: z.enum(["none", "require"]).default("none"),
    // Backups (bun run backup / restore).
    BACKUP_DIR: z.string().trim().min(1).default("./backups"),
    BACKUP_KEEP: positiveInt.max(1000).default(7),
    /** a Prometheus textfile (node_exporter textfile collector) updated after every successful backup */
    BACKUP_METRICS_FILE: z.string().trim().min(1).optional(),
    /** where pg_dump and pg_restore live; found through pg_config and the usual install paths when unset */
    PG_BIN_DIR: z.string().trim().min(1).optional(),
  })
  .superRefine((env, ctx) => {
    const hasUrl = env.UPSTASH_REDIS_REST_URL !== undefined;
    const hasToken = env.UPSTASH_REDIS_REST_TOKEN !== undefined;
    if (hasUrl !== hasToken) {
      ctx.addIssue({
        code: "custom",
        path: [hasUrl ? "UPSTASH_REDIS_REST_TOKEN" : "UPSTASH_REDIS_REST_URL"],
        message: "UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN must be set together",
      });
    }
    if (env.TOKEN_TTL_SECONDS > env.TOKEN_MAX_TTL_SECONDS) {
      ctx.addIssue({ code: "custom", path: ["TOKEN_TTL_SECONDS"], message: "must not exceed TOKEN_MAX_TTL_SECONDS" });
    }
    // Otherwise every decision created without expires_in is refused, blaming a field the caller never sent.
    if (env.DECISION_DEFAULT_TTL_SECONDS > env.DECISION_MAX_TTL_SECONDS) {
      ctx.addIssue({ code: "custom", path: ["DECISION_DEFAULT_TTL_SECONDS"], message: "must not exceed DECISION_MAX_TTL_SECONDS" });
    }
    if (env.SMTP_URL !== undefined && env.EMAIL_LINK_SECRET === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["EMAIL_LINK_SECRET"],
        message: "is required with SMTP_URL: it signs the emailed action links",
      });
    }
    if ((env.TLS_CERT_FILE === undefined) !== (env.TLS_KEY_FILE === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: [env.TLS_CERT_FILE ? "TLS_KEY_FILE" : "TLS_CERT_FILE"],
        message: "TLS_CERT_FILE and TLS_KEY_FILE must be set together",
      });
    }
    if (env.TLS_CLIENT_AUTH === "require" && (!env.TLS_CA_FILE || !env.TLS_CERT_FILE)) {
      ctx.addIssue({
        code: "custom",
        path: ["TLS_CLIENT_AUTH"],
        message: "TLS_CLIENT_AUTH=require needs TLS_CA_FILE and the server's TLS_CERT_FILE/TLS_KEY_FILE",
      });
    }
    if (env.REDIS_URL && hasUrl) {
      ctx.addIssue({
        code: "custom",
        path: ["REDIS_URL"],
        message: "set either REDIS_URL or the UPSTASH_REDIS_REST_* pair, not both",
      });
    }
  });

export type Config = z.output<typeof configSchema>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Parses an environment; throws a ConfigError whose message is one line naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // An empty variable means "unset": `FOO= bun run dev` should not fail validation.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = configSchema.safeParse(cleaned);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const variable = issue.path.join(".") || "environment";
    return `${variable}: ${issue.message}`;
  });
  throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
}

/** Redacts credentials from a connection URL so it can be logged. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "<unparseable url>";
  }
}
