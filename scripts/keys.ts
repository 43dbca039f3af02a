/**
 * Local key management against the configured database (DATABASE_URL, or the embedded DATA_DIR):
 *
 *   bun run keys generate                                   a new key for ARBITER_API_KEYS (not stored)
 *   bun run keys create --name ci --role service [--permissions decisions:create,decisions:read] [--expires-at ISO]
 *   bun run keys list [--role service] [--status active]
 *   bun run keys revoke <id>
 *   bun run keys rotate <id> [--grace-seconds 3600]
 *   bun run keys rotate-signing-key                         retire the stored token signing key, make a new one
 *
 * Every change is written to the auth audit trail with no actor key (address "local").
 * Exit codes: 0 done, 1 the operation was refused (message on stderr), 2 bad usage or configuration.
 */
import { parseArgs } from "node:util";
import { createAuthAudit } from "../src/auth/audit";
import { generateApiKey } from "../src/auth/key-format";
import { createKey, KEY_STATUSES, type KeyStatus, keyView, listKeys, revokeKey, rotateKey } from "../src/auth/keys-service";
import { PERMISSIONS, type Permission } from "../src/auth/rbac";
import { publishRevocation } from "../src/auth/revocations";
import { rotateSigningKey } from "../src/auth/tokens";
import { createCache } from "../src/cache";
import { ConfigError, loadConfig } from "../src/config";
import { isUuid } from "../src/db/ids";
import { ROLES, type Role } from "../src/db/schema";
import { openDatabase, systemClock } from "../src/deps";
import { ApiError } from "../src/http/errors";
import { inInstantRange } from "../src/http/instant";
import { createLogger } from "../src/observability/logger";

const USAGE = "usage: bun run keys <generate|create|list|revoke|rotate|rotate-signing-key> [options]  (see scripts/keys.ts)";

function usage(message: string): never {
  console.error(`keys: ${message}\n${USAGE}`);
  process.exit(2);
}

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    name: { type: "string" },
    role: { type: "string" },
    permissions: { type: "string" },
    "expires-at": { type: "string" },
    status: { type: "string" },
    "grace-seconds": { type: "string" },
    limit: { type: "string" },
  },
});
const [command, id] = positionals;
if (id !== undefined && !isUuid(id)) usage("a key id is a UUID (see `bun run keys list`)");

if (command === "generate") {
  console.log(generateApiKey());
  process.exit(0);
}

const oneOf = <T extends string>(value: string | undefined, allowed: readonly T[], flag: string): T | undefined => {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) usage(`--${flag} must be one of ${allowed.join(", ")}`);
  return value as T;
};
const dateOption = (value: string | undefined): Date | undefined => {
  if (value === undefined) return undefined;
  const date = new Date(value);
  // The API's bound too: a date PostgreSQL cannot store is bad usage, not a crash on insert.
  if (!inInstantRange(date.getTime())) usage("--expires-at must be an ISO 8601 date-time between the years 0001 and 9999");
  return date;
};

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (error) {
  if (error instanceof ConfigError) usage(error.message);
  throw error;
}
const logger = createLogger({ level: "warn" });
const database = await openDatabase(config);
if (config.RUN_MIGRATIONS) await database.migrate();
const db = database.db;
// Running replicas sharing this Redis (or Upstash) drop a revoked or rotated key at once.
const cache = createCache(config);
const deps = {
  db,
  clock: systemClock,
  audit: createAuthAudit({ db, clock: systemClock, logger }),
  forgetKey: (row: { id: string }) => publishRevocation({ cache, logger }, { kind: "key", id: row.id }),
};
const local = { address: "local", userAgent: "bun run keys" };
const print = (value: unknown) => console.log(JSON.stringify(value, null, 2));

try {
  switch (command) {
    case "create": {
      if (!values.name) usage("create needs --name");
      const role = oneOf<Role>(values.role, ROLES, "role") ?? usage("create needs --role");
      const permissions = values.permissions?.split(",").map((p) => oneOf<Permission>(p.trim(), PERMISSIONS, "permissions")!);
      const { key, row } = await createKey(
        deps,
        null,
        { name: values.name, role, permissions, expiresAt: dateOption(values["expires-at"]) },
        local,
      );
      print({ ...keyView(row, systemClock.now()), key });
      console.error("The key above is shown once; it is not stored anywhere.");
      break;
    }
    case "list": {
      const limit = Number(values.limit ?? 500);
      if (!Number.isInteger(limit) || limit < 1) usage("--limit must be a whole number ≥ 1");
      const page = await listKeys(
        db,
        {
          limit,
          role: oneOf<Role>(values.role, ROLES, "role"),
          status: oneOf<KeyStatus>(values.status, KEY_STATUSES, "status"),
        },
        systemClock.now(),
      );
      print(page.data);
      break;
    }
    case "revoke": {
      if (!id) usage("revoke needs a key id");
      print(keyView(await revokeKey(deps, null, id, local), systemClock.now()));
      break;
    }
    case "rotate": {
      if (!id) usage("rotate needs a key id");
      const graceSeconds = Number(values["grace-seconds"] ?? 0);
      if (!Number.isInteger(graceSeconds) || graceSeconds < 0) usage("--grace-seconds must be a whole number ≥ 0");
      const { key, row, old } = await rotateKey(deps, null, id, { graceSeconds }, local);
      print({ ...keyView(row, systemClock.now()), key, previous: keyView(old, systemClock.now()) });
      console.error("The new key above is shown once; it is not stored anywhere.");
      break;
    }
    case "rotate-signing-key": {
      print({ kid: await rotateSigningKey(db, systemClock.now()) });
      break;
    }
    default:
      usage(command ? `unknown command ${command}` : "no command");
  }
} catch (error) {
  if (!(error instanceof ApiError)) throw error;
  console.error(`keys: ${error.code}: ${error.message}`);
  process.exitCode = 1;
} finally {
  await Promise.allSettled([cache.close(), database.close()]);
}
