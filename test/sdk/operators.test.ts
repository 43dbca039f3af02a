import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { ArbiterClient, ArbiterError } from "../../src/sdk";
import { startTestApp, type TestApp } from "../helpers/app";
import { clientAs, rejection } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

describe("SDK: operators", () => {
  test("a person's whole life: create, update, page through, hold keys, approve once however many keys, disable", async () => {
    const admin = clientAs(t, "admin");
    const tag = crypto.randomUUID().slice(0, 8);
    const person = await admin.operators.create({ name: "Linus", role: "operator", email: `linus.${tag}@example.com` });
    const renamed = await admin.operators.update(person.id, { name: "Linus T.", email: null });
    expect(renamed).toMatchObject({ id: person.id, name: "Linus T.", email: null });

    const seen: string[] = [];
    for await (const item of admin.operators.listAll({ status: "active", limit: 2 })) seen.push(item.id);
    expect(seen).toContain(person.id);

    const laptop = await admin.keys.create({ name: "linus-laptop", role: "operator", operator_id: person.id });
    const ci = await admin.keys.create({ name: "linus-ci", role: "operator" });
    expect((await admin.operators.assignKey(person.id, ci.id)).operator_id).toBe(person.id);

    const decision = await clientAs(t, "service").decisions.create({
      kind: "deploy",
      title: "two people",
      payload: { v: 1 },
      required_approvals: 2,
    });
    await new ArbiterClient({ baseUrl: t.url, apiKey: laptop.key }).decisions.approve(decision.id);
    const twice = await rejection(new ArbiterClient({ baseUrl: t.url, apiKey: ci.key }).decisions.approve(decision.id));
    expect(twice).toBeInstanceOf(ArbiterError);
    expect((twice as ArbiterError).code).toBe("already_approved");

    const disabled = await admin.operators.disable(person.id);
    expect(disabled.revoked_key_ids.sort()).toEqual([laptop.id, ci.id].sort());
    expect((await admin.operators.get(person.id)).status).toBe("disabled");
  });

  test("notification routes: create, page through, disable; a decision's delivery log", async () => {
    const admin = clientAs(t, "admin");
    const route = await admin.notifications.createRoute({
      name: "sdk route",
      kinds: ["sdk.kind"],
      targets: [{ type: "slack_channel", channel: "#sdk" }],
      escalate_after_seconds: 600,
    });
    expect(route).toMatchObject({ level: 0, enabled: true, min_priority: null, escalate_after_seconds: 600 });
    const ids: string[] = [];
    for await (const item of admin.notifications.allRoutes({ limit: 1 })) ids.push(item.id);
    expect(ids).toContain(route.id);
    expect((await admin.notifications.updateRoute(route.id, { enabled: false })).enabled).toBe(false);
    const decision = await clientAs(t, "service").decisions.create({ kind: "sdk.kind", title: "logged", payload: {} });
    // No Slack or SMTP is configured here: nothing is queued, and the log says so.
    expect(await admin.notifications.deliveries(decision.id)).toEqual([]);
  });
});
