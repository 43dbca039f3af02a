import { count, sql } from "drizzle-orm";
import type { Config } from "../config";
import type { Database } from "../db/client";
import { uuidv7 } from "../db/ids";
import { apiKeys } from "../db/schema";
import type { Logger } from "../observability/logger";
import { createApiKey } from "./api-keys";
import { loadKeySet } from "./tokens";

// Replicas starting together bootstrap one at a time (transaction-scoped advisory lock).
const BOOTSTRAP_LOCK_ID = 7_281_944_307;

/**
 * Start-up identity work, run once per process before serving:
 * - keys from `ARBITER_API_KEYS` (already hashed by the config parser) are stored if new; a key that
 *   was revoked stays revoked — restarting must not resurrect it;
 * - an empty database with no configured key gets one admin key, whose raw value is handed to
 *   `announce` exactly once (it is never logged);
 * - the token signing key is loaded (a configured one validated, or one generated and stored).
 */
export async function bootstrapIdentity(options: {
  db: Database;
  config: Config;
  logger: Logger;
  now: Date;
  announce: (text: string) => void;
}): Promise<void> {
  const { db, config, logger, now } = options;
  const configured = config.ARBITER_API_KEYS ?? [];
  const firstKey = await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK_ID})`);
    for (const [index, entry] of configured.entries()) {
      const [inserted] = await tx
        .insert(apiKeys)
        .values({
          id: uuidv7(now.getTime()),
          keyHash: entry.keyHash,
          displayPrefix: entry.displayPrefix,
          name: `ARBITER_API_KEYS #${index + 1}`,
          role: entry.role,
          metadata: { source: "ARBITER_API_KEYS" },
          createdAt: now,
        })
        .onConflictDoNothing({ target: apiKeys.keyHash })
        .returning({ id: apiKeys.id });
      if (inserted) logger.info("configured API key stored", { key_id: inserted.id, role: entry.role, entry: index + 1 });
    }
    if (configured.length > 0) return undefined;
    const [existing] = await tx.select({ n: count() }).from(apiKeys);
    if ((existing?.n ?? 0) > 0) return undefined;
    return createApiKey(tx, { name: "first-start admin", role: "admin", metadata: { source: "first-start" } }, now);
  });
  if (firstKey) {
    logger.info("first start: created an admin key", { key_id: firstKey.row.id });
    options.announce(
      [
        "",
        "Arbiter first start: an admin API key was created. It is shown once and cannot be retrieved later:",
        "",
        `    ${firstKey.key}`,
        "",
        "Store it in a secret manager; create narrower keys with POST /v1/keys or `bun run keys create`.",
        "",
      ].join("\n"),
    );
  }
  await loadKeySet(db, config, now);
}
