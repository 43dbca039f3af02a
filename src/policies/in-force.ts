import type { Database } from "../db/client";
import { policies, policyGeneration } from "../db/schema";
import type { ActiveRule } from "./engine";
import { compileRules, IN_FORCE, IN_ORDER } from "./service";

/** The rules in force as read at one generation of the policy set (see `policyGeneration`). */
export interface RulesInForce {
  generation: number;
  rules: ActiveRule[];
}

interface Entry {
  read: Promise<RulesInForce>;
  /** set once the read is done */
  generation?: number;
}

const entries = new WeakMap<Database, Entry>();

/** The generation and the rules in force, in one statement: both from the same snapshot. */
async function readRulesInForce(db: Database): Promise<RulesInForce> {
  const rows = await db
    .select({ generation: policyGeneration.generation, policy: policies })
    .from(policyGeneration)
    .leftJoin(policies, IN_FORCE)
    .orderBy(...IN_ORDER);
  const first = rows[0];
  if (!first) throw new Error("the policy generation row is missing: the database is not migrated");
  return {
    generation: Number(first.generation),
    rules: compileRules(rows.flatMap((row) => (row.policy ? [row.policy] : []))),
  };
}

/**
 * This process's copy of the rules in force, read once and kept: a decision is stored only under the
 * generation its rules were read at (the create statement checks it), so a copy that any replica's
 * policy change made stale is refused by the database, never used. Pass `stale`, the generation a
 * decision was refused under, to get rules read after it; concurrent callers share one read.
 */
export function rulesInForce(db: Database, stale?: number): Promise<RulesInForce> {
  const entry = entries.get(db);
  if (entry && (stale === undefined || entry.generation !== stale)) return entry.read;
  const read = readRulesInForce(db);
  const created: Entry = { read };
  entries.set(db, created);
  read.then(
    ({ generation }) => {
      created.generation = generation;
    },
    () => {
      // A failed read is not kept: the next decision reads again (and fails closed meanwhile).
      if (entries.get(db) === created) entries.delete(db);
    },
  );
  return read;
}
