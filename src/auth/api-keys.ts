import { eq } from "drizzle-orm";
import type { Database } from "../db/client";
import { uuidv7 } from "../db/ids";
import { type ApiKeyRow, apiKeys, type Role } from "../db/schema";
import { displayPrefixOf, generateApiKey, hashApiKeySync } from "./key-format";

export { displayPrefixOf, generateApiKey, hashApiKeySync, isWellFormedApiKey, KEY_PREFIX } from "./key-format";

export interface NewApiKey {
  name: string;
  role: Role;
  permissions?: string[] | null;
  metadata?: Record<string, unknown>;
  createdBy?: string | null;
  expiresAt?: Date | null;
  rotatedFrom?: string | null;
  operatorId?: string | null;
}

/** Creates a key and returns the raw value: the only time it exists outside the caller's hands. */
export async function createApiKey(db: Database, input: NewApiKey, now: Date): Promise<{ key: string; row: ApiKeyRow }> {
  const key = generateApiKey();
  const [row] = await db
    .insert(apiKeys)
    .values({
      id: uuidv7(now.getTime()),
      keyHash: hashApiKeySync(key),
      displayPrefix: displayPrefixOf(key),
      name: input.name,
      role: input.role,
      permissions: input.permissions ?? null,
      metadata: input.metadata ?? {},
      createdBy: input.createdBy ?? null,
      rotatedFrom: input.rotatedFrom ?? null,
      operatorId: input.operatorId ?? null,
      createdAt: now,
      expiresAt: input.expiresAt ?? null,
    })
    .returning();
  if (!row) throw new Error("insert returned no row");
  return { key, row };
}

export async function findApiKeyByHash(db: Database, keyHash: string): Promise<ApiKeyRow | undefined> {
  const [row] = await db.select().from(apiKeys).where(eq(apiKeys.keyHash, keyHash)).limit(1);
  return row;
}

export async function findApiKeyById(db: Database, id: string): Promise<ApiKeyRow | undefined> {
  const [row] = await db.select().from(apiKeys).where(eq(apiKeys.id, id)).limit(1);
  return row;
}
