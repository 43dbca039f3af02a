import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { MIGRATIONS_FOLDER } from "../../src/db/client";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, "meta/_journal.json"), "utf8")) as { entries: { tag: string }[] };

async function apply(db: PGlite, tag: string) {
  const statements = readFileSync(join(MIGRATIONS_FOLDER, `${tag}.sql`), "utf8").split("--> statement-breakpoint");
  for (const statement of statements) if (statement.trim()) await db.exec(statement);
}

/** Rows written before people existed, then the migration that introduced them: nothing is lost. */
describe("upgrade to people", () => {
  test("each person-held key becomes its own person with the key's id; decisions keep their approvals as people", async () => {
    const db = new PGlite();
    const tags = journal.entries.map((entry) => entry.tag);
    const people = tags.indexOf("0003_people");
    expect(people).toBeGreaterThan(0);
    for (const tag of tags.slice(0, people)) await apply(db, tag);

    const [admin, operator, service] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    await db.query(
      `insert into api_keys (id, key_hash, display_prefix, name, role) values
         ($1, 'h1', 'arb_1', 'alice laptop', 'admin'), ($2, 'h2', 'arb_2', 'bob', 'operator'), ($3, 'h3', 'arb_3', 'deployer', 'service')`,
      [admin, operator, service],
    );
    const decision = crypto.randomUUID();
    await db.query(
      `insert into decisions (id, kind, title, payload, payload_hash, requester_key_id, required_approvals, approvals, expires_at)
       values ($1, 'deploy', 't', '{}', 'x', $2, 2, array[$3]::uuid[], now() + interval '1 hour')`,
      [decision, service, operator],
    );

    for (const tag of tags.slice(people)) await apply(db, tag);

    const operators = await db.query<{ id: string; name: string; role: string }>("select id, name, role from operators order by name");
    expect(operators.rows).toEqual([
      { id: admin, name: "alice laptop", role: "admin" },
      { id: operator, name: "bob", role: "operator" },
    ]);
    const keys = await db.query<{ id: string; operator_id: string | null }>("select id, operator_id from api_keys");
    expect(Object.fromEntries(keys.rows.map((row) => [row.id, row.operator_id]))).toEqual({
      [admin]: admin,
      [operator]: operator,
      [service]: null,
    });
    const [row] = (
      await db.query<{ requester_person_id: string; approver_people: string[]; approvals: string[] }>(
        "select requester_person_id, approver_people, approvals from decisions",
      )
    ).rows;
    expect(row).toEqual({ requester_person_id: service, approver_people: [operator], approvals: [operator] });
    await db.close();
  });
});
