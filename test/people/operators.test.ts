import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { eq } from "drizzle-orm";
import { authEvents } from "../../src/db/schema";
import { errorCode } from "../auth/support";
import { type JsonBody, requestWithKey } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const unique = () => crypto.randomUUID().slice(0, 8);

async function createPerson(body: Record<string, unknown>): Promise<JsonBody> {
  const res = await t.request("/v1/operators", {
    method: "POST",
    as: "admin",
    json: { name: `Person ${unique()}`, role: "operator", ...body },
  });
  expect(res.status).toBe(201);
  return (await res.json()) as JsonBody;
}

async function createKeyFor(operatorId: string, role = "operator", extra: Record<string, unknown> = {}) {
  const res = await t.request("/v1/keys", {
    method: "POST",
    as: "admin",
    json: { name: `key-${unique()}`, role, operator_id: operatorId, ...extra },
  });
  return { res, body: (await res.json()) as JsonBody };
}

describe("people: happy path", () => {
  test("create, read, list and change a person; contacts are normalised", async () => {
    const tag = unique();
    const person = await createPerson({ name: "Ada Lovelace", email: `Ada.${tag}@Example.COM`, slack_user_id: "U024BE7LH" });
    expect(person).toMatchObject({
      name: "Ada Lovelace",
      email: `ada.${tag}@example.com`,
      slack_user_id: "U024BE7LH",
      role: "operator",
      status: "active",
      created_by: t.keyIds.admin,
      disabled_at: null,
    });

    const read = await t.request(`/v1/operators/${person.id}`, { as: "admin" });
    expect(await read.json()).toEqual(person);

    const listed = (await (await t.request("/v1/operators?role=operator&status=active&limit=500", { as: "admin" })).json()) as JsonBody;
    expect(listed.data.map((p: JsonBody) => p.id)).toContain(person.id);

    const changed = await t.request(`/v1/operators/${person.id}`, {
      method: "PATCH",
      as: "admin",
      json: { name: "Ada King", slack_user_id: null },
    });
    expect(changed.status).toBe(200);
    expect(await changed.json()).toMatchObject({ id: person.id, name: "Ada King", slack_user_id: null, email: `ada.${tag}@example.com` });
  });

  test("a key given to a person says so, is listed under them, and rotation keeps the person", async () => {
    const person = await createPerson({});
    const { res, body: key } = await createKeyFor(person.id);
    expect(res.status).toBe(201);
    expect(key.operator_id).toBe(person.id);

    const theirs = (await (await t.request(`/v1/keys?operator_id=${person.id}`, { as: "admin" })).json()) as JsonBody;
    expect(theirs.data.map((k: JsonBody) => k.id)).toEqual([key.id]);

    const rotated = await t.request(`/v1/keys/${key.id}/rotate`, { method: "POST", as: "admin", json: {} });
    expect(rotated.status).toBe(201);
    expect(((await rotated.json()) as JsonBody).operator_id).toBe(person.id);
  });

  test("an existing key is given to a person", async () => {
    const person = await createPerson({});
    const loose = (await (
      await t.request("/v1/keys", { method: "POST", as: "admin", json: { name: `loose-${unique()}`, role: "operator" } })
    ).json()) as JsonBody;
    expect(loose.operator_id).toBeNull();
    const res = await t.request(`/v1/operators/${person.id}/keys`, { method: "POST", as: "admin", json: { key_id: loose.id } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as JsonBody).operator_id).toBe(person.id);
  });

  test("disabling a person revokes every key they hold, and their tokens, at once", async () => {
    const person = await createPerson({});
    const first = (await createKeyFor(person.id)).body;
    const second = (await createKeyFor(person.id, "readonly")).body;
    const token = (await (await requestWithKey(t, first.key, "/v1/auth/token", { method: "POST", json: {} })).json()) as JsonBody;
    expect((await fetch(`${t.url}/v1/decisions`, { headers: { Authorization: `Bearer ${token.access_token}` } })).status).toBe(200);

    const res = await t.request(`/v1/operators/${person.id}/disable`, { method: "POST", as: "admin" });
    expect(res.status).toBe(200);
    const disabled = (await res.json()) as JsonBody;
    expect(disabled.status).toBe("disabled");
    expect(disabled.revoked_key_ids.sort()).toEqual([first.id, second.id].sort());

    for (const key of [first.key, second.key]) {
      const refused = await requestWithKey(t, key, "/v1/decisions");
      expect(refused.status).toBe(401);
      expect(await errorCode(refused)).toBe("key_revoked");
    }
    const tokenRefused = await fetch(`${t.url}/v1/decisions`, { headers: { Authorization: `Bearer ${token.access_token}` } });
    expect(tokenRefused.status).toBe(401);

    const audit = await t.deps.database.db.select().from(authEvents).where(eq(authEvents.targetId, person.id));
    expect(audit.map((row) => row.action).sort()).toEqual(["operator.create", "operator.disable"]);
  });
});

describe("people: errors", () => {
  test("bad input is a 400 naming the field", async () => {
    const cases: [unknown, string][] = [
      [{ name: "x", role: "operator", email: "not-an-email" }, "json.email"],
      [{ name: "x", role: "operator", slack_user_id: "alice" }, "json.slack_user_id"],
      [{ name: "", role: "operator" }, "json.name"],
      [{ name: "x", role: "overlord" }, "json.role"],
      [{ name: "x", role: "operator", team: "ops" }, "json"],
    ];
    for (const [body, path] of cases) {
      const res = await t.request("/v1/operators", { method: "POST", as: "admin", json: body });
      expect(res.status).toBe(400);
      const error = ((await res.json()) as JsonBody).error;
      expect(error.code).toBe("validation_failed");
      expect(error.details.map((d: JsonBody) => d.path).join(" ")).toContain(path);
    }
    const empty = await t.request(`/v1/operators/${crypto.randomUUID()}`, { method: "PATCH", as: "admin", json: {} });
    expect(empty.status).toBe(400);
  });

  test("an email or Slack id already used by another person is a 409 naming the field", async () => {
    const tag = unique();
    const first = await createPerson({
      email: `dup.${tag}@example.com`,
      slack_user_id: `U${tag.toUpperCase().replace(/[^A-Z0-9]/g, "0")}`,
    });
    const again = await t.request("/v1/operators", {
      method: "POST",
      as: "admin",
      json: { name: "Other", role: "readonly", email: `DUP.${tag}@example.com` },
    });
    expect(again.status).toBe(409);
    expect(((await again.json()) as JsonBody).error).toMatchObject({
      code: "operator_exists",
      details: { field: "email", operator_id: first.id },
    });

    const other = await createPerson({});
    const steal = await t.request(`/v1/operators/${other.id}`, {
      method: "PATCH",
      as: "admin",
      json: { slack_user_id: first.slack_user_id },
    });
    expect(steal.status).toBe(409);
    expect(((await steal.json()) as JsonBody).error.details.field).toBe("slack_user_id");
    // Setting one's own value again is no clash.
    const same = await t.request(`/v1/operators/${first.id}`, { method: "PATCH", as: "admin", json: { email: first.email } });
    expect(same.status).toBe(200);
  });

  test("unknown people are 404, an unknown operator_id on a key is 422", async () => {
    expect((await t.request(`/v1/operators/${crypto.randomUUID()}`, { as: "admin" })).status).toBe(404);
    expect((await t.request(`/v1/operators/${crypto.randomUUID()}/disable`, { method: "POST", as: "admin" })).status).toBe(404);
    const { res, body } = await createKeyFor(crypto.randomUUID());
    expect(res.status).toBe(422);
    expect(body.error.code).toBe("unknown_operator");
  });

  test("a disabled person cannot be disabled again nor given a key", async () => {
    const person = await createPerson({});
    await t.request(`/v1/operators/${person.id}/disable`, { method: "POST", as: "admin" });
    const again = await t.request(`/v1/operators/${person.id}/disable`, { method: "POST", as: "admin" });
    expect(again.status).toBe(409);
    const { res, body } = await createKeyFor(person.id);
    expect(res.status).toBe(409);
    expect(body.error.code).toBe("operator_disabled");
  });
});

describe("people: security", () => {
  test("no key outranks its person: on creation, on assignment, and when the person's role is lowered", async () => {
    const reader = await createPerson({ role: "readonly" });
    const { res, body } = await createKeyFor(reader.id, "operator");
    expect(res.status).toBe(422);
    expect(body.error).toMatchObject({ code: "key_exceeds_person_role" });
    // A key narrowed to what a reader may do is fine.
    const narrowed = await createKeyFor(reader.id, "operator", { permissions: ["decisions:read"] });
    expect(narrowed.res.status).toBe(201);

    const loose = (await (
      await t.request("/v1/keys", { method: "POST", as: "admin", json: { name: `loose-${unique()}`, role: "admin" } })
    ).json()) as JsonBody;
    const assign = await t.request(`/v1/operators/${reader.id}/keys`, { method: "POST", as: "admin", json: { key_id: loose.id } });
    expect(assign.status).toBe(422);

    const operator = await createPerson({ role: "operator" });
    const key = (await createKeyFor(operator.id, "operator")).body;
    const lower = await t.request(`/v1/operators/${operator.id}`, { method: "PATCH", as: "admin", json: { role: "readonly" } });
    expect(lower.status).toBe(409);
    expect(((await lower.json()) as JsonBody).error).toMatchObject({ code: "keys_exceed_role", details: { key_ids: [key.id] } });
  });

  test("only holders of the key permissions manage people; nobody records a person above themselves", async () => {
    for (const role of ["operator", "readonly", "service"] as const) {
      const res = await t.request("/v1/operators", { method: "POST", as: role, json: { name: "x", role: "readonly" } });
      expect(res.status).toBe(403);
    }
    // An admin key narrowed to key management cannot record an admin person (it lacks admin's other permissions).
    const narrow = (await (
      await t.request("/v1/keys", {
        method: "POST",
        as: "admin",
        json: { name: `narrow-${unique()}`, role: "admin", permissions: ["keys:create", "keys:read"] },
      })
    ).json()) as JsonBody;
    const res = await requestWithKey(t, narrow.key, "/v1/operators", { method: "POST", json: { name: "Boss", role: "admin" } });
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("privilege_escalation");
  });

  test("every change to a person is in the auth audit trail", async () => {
    const person = await createPerson({});
    await t.request(`/v1/operators/${person.id}`, { method: "PATCH", as: "admin", json: { name: "Renamed" } });
    const res = await t.request("/v1/audit/auth?action=operator.update&limit=500", { as: "admin" });
    const rows = ((await res.json()) as JsonBody).data as JsonBody[];
    const row = rows.find((r) => r.target_id === person.id);
    expect(row).toMatchObject({ actor_key_id: t.keyIds.admin, outcome: "success", reason: "changed: name" });
  });
});
