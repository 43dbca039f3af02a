import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { eq, sql } from "drizzle-orm";
import { decisions, notificationDeliveries } from "../../src/db/schema";
import { escalateOnDeadline } from "../../src/decisions/service";
import type { Clock } from "../../src/deps";
import { deliverDueNotifications } from "../../src/notify/deliver";
import { dispatchNotificationEvents } from "../../src/notify/dispatch";
import { createMailer } from "../../src/notify/email";
import { createSlackApi } from "../../src/notify/slack";
import { notificationDeps } from "../../src/notify/workers";
import { auditTrail, createDecision, type JsonBody, sharedDatabase } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";
import { signedInteraction, startFakeSlack } from "../helpers/fake-slack";
import { startSmtpSink } from "../helpers/smtp";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

const SLACK_TOKEN = "xoxb-test-0000000000-abcdefghijklmnop";
const SIGNING_SECRET = "slack-signing-secret-for-tests-0001";
const LINK_SECRET = "email-link-secret-for-tests-0123456789abcdef";

let t: TestApp;
let slack: ReturnType<typeof startFakeSlack>;
let smtp: Awaited<ReturnType<typeof startSmtpSink>>;
let notify: ReturnType<typeof notificationDeps>;

const env = () => ({
  SLACK_BOT_TOKEN: SLACK_TOKEN,
  SLACK_SIGNING_SECRET: SIGNING_SECRET,
  SLACK_API_URL: slack.url,
  SMTP_URL: smtp.url,
  EMAIL_LINK_SECRET: LINK_SECRET,
});

beforeAll(async () => {
  slack = startFakeSlack(SLACK_TOKEN);
  smtp = await startSmtpSink();
  t = await startTestApp({ env: env() });
  notify = notificationDeps(t.deps);
  notify.delivery.publicUrl = t.url;
});
afterAll(async () => {
  await t.close();
  slack.stop();
  await smtp.stop();
});

const later = (ms: number): Clock => ({ now: () => new Date(Date.now() + ms) });

/** Runs the outbox as the workers would: dispatch every new event, then send every due message. */
async function pump(delivery = notify.delivery) {
  while ((await dispatchNotificationEvents(notify.dispatch)) > 0);
  while ((await deliverDueNotifications(delivery)) > 0);
}

const kindOf = (label: string) => `notify.${label}.${crypto.randomUUID().slice(0, 6)}`;
let slackIds = 0;
const nextSlackId = () => `U0TEST${String(++slackIds).padStart(4, "0")}`;

async function person(role: "operator" | "admin" | "readonly" = "operator") {
  const res = await t.request("/v1/operators", {
    method: "POST",
    as: "admin",
    json: { name: `Person ${slackIds}`, role, slack_user_id: nextSlackId(), email: `p${crypto.randomUUID().slice(0, 8)}@example.com` },
  });
  expect(res.status).toBe(201);
  return (await res.json()) as JsonBody;
}

async function route(body: Record<string, unknown>) {
  const res = await t.request("/v1/notification-routes", { method: "POST", as: "admin", json: { name: "route", ...body } });
  expect(res.status).toBe(201);
  return (await res.json()) as JsonBody;
}

const interact = (payload: unknown, signed = signedInteraction(SIGNING_SECRET, payload)) =>
  fetch(`${t.url}/integrations/slack/interactions`, { method: "POST", headers: signed.headers, body: signed.body });

const click = (user: string, action: string, decisionId: string) =>
  interact({
    type: "block_actions",
    user: { id: user },
    channel: { id: "C0PUBLIC01" },
    trigger_id: "1337.42.abcd",
    actions: [{ action_id: action, value: decisionId }],
  });

const decisionNow = async (id: string) => (await (await t.request(`/v1/decisions/${id}`, { as: "admin" })).json()) as JsonBody;
const postsTo = (channel: string) => slack.callsTo("chat.postMessage").filter((call) => call.params.channel === channel);
const buttonsOf = (call: { params: JsonBody }) =>
  (call.params.blocks as JsonBody[]).filter((b) => b.type === "actions").flatMap((b) => b.elements.map((e: JsonBody) => e.action_id));
const mailTo = (address: string) => smtp.messages.filter((m) => m.to && JSON.stringify(m.to).includes(address));
const linkIn = (text: string, label: "Approve" | "Reject") => new RegExp(`${label}: (\\S+)`).exec(text)?.[1];

describe("notifications: happy path", () => {
  test("a decision creates one Slack message and one email, once, and the delivery log shows both", async () => {
    const ada = await person();
    const kind = kindOf("one");
    await route({
      kinds: [kind],
      targets: [
        { type: "slack_channel", channel: "#approvals" },
        { type: "people", operator_ids: [ada.id], via: ["email"] },
      ],
    });
    const decision = await createDecision(t, { kind, title: "Refund order 1042" });
    await pump();
    await pump(); // a second run sends nothing again

    const posts = slack.callsTo("chat.postMessage").filter((call) => JSON.stringify(call.params.blocks).includes(decision.id));
    expect(posts).toHaveLength(1);
    expect(posts[0]!.token).toBe(SLACK_TOKEN);
    expect(posts[0]!.params.text).toBe("Approval needed: Refund order 1042");
    expect(buttonsOf(posts[0]!)).toEqual(["arbiter_approve", "arbiter_reject", "arbiter_console"]);

    const mails = mailTo(ada.email);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.subject).toBe("[Arbiter] Approval needed: Refund order 1042");
    expect(mails[0]!.text).toContain(`Approve: ${t.url}/integrations/email/`);
    expect(mails[0]!.html).toContain("Approve</a>");
    expect(mails[0]!.messageId).toMatch(/@arbiter>$/);

    const log = (await (await t.request(`/v1/decisions/${decision.id}/notifications`, { as: "admin" })).json()) as JsonBody;
    expect(log.data.map((d: JsonBody) => [d.channel, d.target, d.purpose, d.status])).toEqual([
      ["slack", "#approvals", "request", "sent"],
      ["email", ada.email, "request", "sent"],
    ]);
  });

  test("approving from Slack resolves the decision as the person and updates the message", async () => {
    const ada = await person();
    const kind = kindOf("approve");
    await route({ kinds: [kind], targets: [{ type: "slack_channel", channel: "C0APPROVE1" }] });
    const decision = await createDecision(t, { kind });
    await pump();
    const [posted] = postsTo("C0APPROVE1");
    expect(posted).toBeDefined();

    const res = await click(ada.slack_user_id, "arbiter_approve", decision.id);
    expect(res.status).toBe(200);
    const approved = await decisionNow(decision.id);
    expect(approved).toMatchObject({ status: "approved", approver_people: [ada.id], resolved_by: ada.id });
    const receipt = (await (await t.request(`/v1/decisions/${decision.id}/receipt`, { as: "admin" })).json()) as JsonBody;
    expect(receipt.claims.decided_by).toEqual({ type: "people", people: [{ key_id: ada.id, person_id: ada.id, name: ada.name }] });

    await pump();
    const update = slack.callsTo("chat.update").find((call) => JSON.stringify(call.params.blocks).includes(decision.id));
    expect(update).toBeDefined();
    expect(update!.params.ts).toMatch(/^1700000000\.\d{6}$/);
    expect(update!.params.channel).toBe(posted!.params.channel);
    expect(update!.params.text).toContain("Decision approved");
    expect(buttonsOf(update!)).toEqual([]);
  });

  test("rejecting from Slack opens a modal for the reason; submitting it rejects", async () => {
    const ada = await person();
    const decision = await createDecision(t, { kind: kindOf("reject") });
    const res = await click(ada.slack_user_id, "arbiter_reject", decision.id);
    expect(res.status).toBe(200);
    const modal = slack.callsTo("views.open").at(-1)!;
    expect(modal.params.trigger_id).toBe("1337.42.abcd");
    expect(modal.params.view).toMatchObject({ callback_id: "arbiter_reject_modal", private_metadata: decision.id });
    expect((await decisionNow(decision.id)).status).toBe("pending");

    const submission = (reason: string | null) => ({
      type: "view_submission",
      user: { id: ada.slack_user_id },
      view: {
        callback_id: "arbiter_reject_modal",
        private_metadata: decision.id,
        state: { values: { reason: { reason_input: { value: reason } } } },
      },
    });
    const empty = await interact(submission("  "));
    expect(await empty.json()).toEqual({ response_action: "errors", errors: { reason: "Give a reason." } });
    const done = await interact(submission("wrong customer"));
    expect(done.status).toBe(200);
    expect(await decisionNow(decision.id)).toMatchObject({ status: "rejected", resolution_reason: "wrong customer", resolved_by: ada.id });
  });

  test("an email link approves once: GET only shows a confirmation, POST acts, a replay is 410", async () => {
    const grace = await person();
    const kind = kindOf("email");
    await route({ kinds: [kind], targets: [{ type: "email", addresses: [grace.email.toUpperCase()] }] });
    const decision = await createDecision(t, { kind, title: "Rotate prod credentials" });
    await pump();
    const [mail] = mailTo(grace.email);
    const approve = linkIn(mail!.text!, "Approve")!;
    expect(approve.startsWith(`${t.url}/integrations/email/`)).toBe(true);

    const shown = await fetch(approve);
    expect(shown.status).toBe(200);
    const page = await shown.text();
    expect(page).toContain("Confirm: approve");
    expect(page).toContain('<form method="post">');
    expect(shown.headers.get("cache-control")).toBe("no-store");
    await fetch(approve); // a mail scanner fetching it again
    expect((await decisionNow(decision.id)).status).toBe("pending");

    const acted = await fetch(approve, { method: "POST" });
    expect(acted.status).toBe(200);
    expect(await acted.text()).toContain("The decision is approved.");
    expect(await decisionNow(decision.id)).toMatchObject({ status: "approved", approver_people: [grace.id] });

    const replay = await fetch(approve, { method: "POST" });
    expect(replay.status).toBe(410);
    expect(await replay.text()).toContain("already used");
    expect((await fetch(approve)).status).toBe(410);
  });
});

describe("notifications: errors", () => {
  test("a bad or stale Slack signature is 401 and changes nothing", async () => {
    const ada = await person();
    const decision = await createDecision(t, { kind: kindOf("sig") });
    const payload = {
      type: "block_actions",
      user: { id: ada.slack_user_id },
      actions: [{ action_id: "arbiter_approve", value: decision.id }],
    };

    const tampered = signedInteraction(SIGNING_SECRET, payload);
    const forged = await fetch(`${t.url}/integrations/slack/interactions`, {
      method: "POST",
      headers: tampered.headers,
      body: tampered.body.replace("arbiter_approve", "arbiter_reject"),
    });
    expect(forged.status).toBe(401);
    expect(((await forged.json()) as JsonBody).error.code).toBe("invalid_signature");

    const wrongSecret = await interact(payload, signedInteraction("another-secret-of-some-length-000", payload));
    expect(wrongSecret.status).toBe(401);
    const stale = await interact(payload, signedInteraction(SIGNING_SECRET, payload, Math.floor(Date.now() / 1000) - 600));
    expect(stale.status).toBe(401);
    expect(((await stale.json()) as JsonBody).error.message).toContain("stale");
    const unsigned = await fetch(`${t.url}/integrations/slack/interactions`, { method: "POST", body: "payload={}" });
    expect(unsigned.status).toBe(401);

    expect((await decisionNow(decision.id)).status).toBe("pending");
    expect((await auditTrail(t, decision.id)).map((row) => row.type)).toEqual(["created"]);
  });

  test("an unmapped Slack user, or a person who may not decide, is refused and told why", async () => {
    const reader = await person("readonly");
    const decision = await createDecision(t, { kind: kindOf("unmapped") });
    const before = slack.callsTo("chat.postEphemeral").length;

    const stranger = await click("U0STRANGER", "arbiter_approve", decision.id);
    expect(stranger.status).toBe(200);
    expect(await stranger.json()).toMatchObject({ ok: false });
    const readonly = await click(reader.slack_user_id, "arbiter_approve", decision.id);
    expect(await readonly.json()).toMatchObject({ ok: false, error: "A readonly cannot approve or reject decisions." });

    const told = slack.callsTo("chat.postEphemeral").slice(before);
    expect(told.map((call) => call.params.user)).toEqual(["U0STRANGER", reader.slack_user_id]);
    expect(told[0]!.params.text).toContain("not mapped");
    expect((await decisionNow(decision.id)).status).toBe("pending");
  });

  test("the requester's own person cannot approve from Slack either", async () => {
    const carol = await person("admin");
    const key = (await (
      await t.request("/v1/keys", { method: "POST", as: "admin", json: { name: "carol-svc", role: "service", operator_id: carol.id } })
    ).json()) as JsonBody;
    const created = await fetch(`${t.url}/v1/decisions`, {
      method: "POST",
      headers: { "X-API-Key": key.key, "Content-Type": "application/json" },
      body: JSON.stringify({ kind: kindOf("self"), title: "mine", payload: {} }),
    });
    const decision = (await created.json()) as JsonBody;
    const res = await click(carol.slack_user_id, "arbiter_approve", decision.id);
    expect(((await res.json()) as JsonBody).error).toContain("cannot approve its own decision");
    expect((await decisionNow(decision.id)).status).toBe("pending");
  });

  test("a reject link needs a reason, and a link for another decision's id or a tampered link is refused", async () => {
    const grace = await person();
    const kind = kindOf("email-reject");
    await route({ kinds: [kind], targets: [{ type: "people", operator_ids: [grace.id], via: ["email"] }] });
    const decision = await createDecision(t, { kind });
    await pump();
    const reject = linkIn(mailTo(grace.email)[0]!.text!, "Reject")!;
    const noReason = await fetch(reject, { method: "POST" });
    expect(noReason.status).toBe(400);
    const tampered = reject.slice(0, -3) + (reject.endsWith("AAA") ? "BBB" : "AAA");
    expect((await fetch(tampered, { method: "POST", body: new URLSearchParams({ reason: "x" }) })).status).toBe(400);
    const rejected = await fetch(reject, { method: "POST", body: new URLSearchParams({ reason: "not now" }) });
    expect(rejected.status).toBe(200);
    expect(await decisionNow(decision.id)).toMatchObject({ status: "rejected", resolution_reason: "not now" });
  });

  test("Slack's 429 is retried after its Retry-After, then sent once", async () => {
    const kind = kindOf("ratelimit");
    await route({ kinds: [kind], targets: [{ type: "slack_channel", channel: "C0RATELIM1" }] });
    const decision = await createDecision(t, { kind });
    slack.rateLimit(1, 7);
    await pump();
    const [row] = await t.deps.database.db.select().from(notificationDeliveries).where(eq(notificationDeliveries.decisionId, decision.id));
    expect(row).toMatchObject({ status: "pending", attempts: 1, lastError: "Slack answered HTTP 429" });
    const wait = row!.nextAttemptAt.getTime() - Date.now();
    expect(wait).toBeGreaterThan(5_000);
    expect(wait).toBeLessThanOrEqual(7_000);

    await pump(); // not due yet
    expect(postsTo("C0RATELIM1").filter((call) => JSON.stringify(call.params.blocks).includes(decision.id))).toHaveLength(1); // the refused one
    await pump({ ...notify.delivery, clock: later(8_000) });
    expect(postsTo("C0RATELIM1")).toHaveLength(2);
    const [sent] = await t.deps.database.db.select().from(notificationDeliveries).where(eq(notificationDeliveries.decisionId, decision.id));
    expect(sent).toMatchObject({ status: "sent", attempts: 2 });
  });
});

describe("notifications: stuck servers", () => {
  test("a Slack API or SMTP server that never answers fails the attempt within its timeout; the row is sent on a later attempt", async () => {
    // Accepts connections and never says a word: no HTTP answer, no SMTP greeting.
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const kind = kindOf("stuck");
      const mailbox = `stuck.${crypto.randomUUID().slice(0, 8)}@example.com`;
      await route({
        kinds: [kind],
        targets: [
          { type: "slack_channel", channel: "C0STUCK001" },
          { type: "email", addresses: [mailbox] },
        ],
      });
      const decision = await createDecision(t, { kind });
      const stuck = {
        ...notify.delivery,
        slack: createSlackApi(SLACK_TOKEN, `http://127.0.0.1:${silent.port}/api/`, 300),
        mailer: createMailer(`smtp://127.0.0.1:${silent.port}`, "Arbiter <arbiter@example.com>", 300),
      };
      while ((await dispatchNotificationEvents(notify.dispatch)) > 0);
      const began = performance.now();
      while ((await deliverDueNotifications(stuck)) > 0);
      expect(performance.now() - began).toBeLessThan(5_000);
      const rows = await t.deps.database.db
        .select()
        .from(notificationDeliveries)
        .where(eq(notificationDeliveries.decisionId, decision.id))
        .orderBy(notificationDeliveries.channel);
      expect(rows.map((row) => [row.channel, row.status, row.attempts])).toEqual([
        ["email", "pending", 1],
        ["slack", "pending", 1],
      ]);
      // nodemailer names whichever of its bounded steps ran out first.
      expect(rows[0]!.lastError).toMatch(/^(Greeting never received|Timeout|Connection timeout)$/);
      expect(rows[1]!.lastError).toBe("Slack did not answer within 300 ms");

      await pump({ ...notify.delivery, clock: later(10_000) });
      const sent = await t.deps.database.db
        .select()
        .from(notificationDeliveries)
        .where(eq(notificationDeliveries.decisionId, decision.id))
        .orderBy(notificationDeliveries.channel);
      expect(sent.map((row) => [row.status, row.attempts])).toEqual([
        ["sent", 2],
        ["sent", 2],
      ]);
      expect(mailTo(mailbox)).toHaveLength(1);
    } finally {
      silent.stop(true);
    }
  });
});

describe("notifications: security", () => {
  test("a critical decision gets a console link, no buttons, no email action links, and a chat click is refused", async () => {
    const ada = await person();
    const kind = kindOf("critical");
    await route({
      kinds: [kind],
      targets: [
        { type: "slack_channel", channel: "C0CRITICAL" },
        { type: "people", operator_ids: [ada.id], via: ["email"] },
      ],
    });
    const decision = await createDecision(t, { kind, priority: "critical" });
    await pump();
    const [posted] = postsTo("C0CRITICAL");
    expect(buttonsOf(posted!)).toEqual(["arbiter_console"]);
    expect(JSON.stringify(posted!.params.blocks)).toContain(`${t.url}/console/decisions/${decision.id}`);
    const [mail] = mailTo(ada.email);
    expect(mail!.text).not.toContain("Approve:");
    expect(mail!.text).toContain(`Review in the console: ${t.url}/console/decisions/${decision.id}`);

    const res = await click(ada.slack_user_id, "arbiter_approve", decision.id);
    expect(((await res.json()) as JsonBody).error).toContain("critical");
    expect((await decisionNow(decision.id)).status).toBe("pending");

    // The threshold is configuration (CONSOLE_ONLY_PRIORITY): from "high", a high decision gets no buttons either.
    const high = await createDecision(t, { kind, priority: "high" });
    await pump({ ...notify.delivery, consoleOnlyFrom: "high" });
    const highPost = postsTo("C0CRITICAL").find((call) => JSON.stringify(call.params.blocks).includes(high.id));
    expect(buttonsOf(highPost!)).toEqual(["arbiter_console"]);
  });

  test("only admins manage routes; a route naming unknown people is refused", async () => {
    for (const role of ["operator", "readonly", "service"] as const) {
      const res = await t.request("/v1/notification-routes", {
        method: "POST",
        as: role,
        json: { name: "x", targets: [{ type: "slack_channel", channel: "#x" }] },
      });
      expect(res.status).toBe(403);
    }
    const unknown = await t.request("/v1/notification-routes", {
      method: "POST",
      as: "admin",
      json: { name: "x", targets: [{ type: "people", operator_ids: [crypto.randomUUID()], via: ["slack"] }] },
    });
    expect(unknown.status).toBe(422);
    const bad = await t.request("/v1/notification-routes", {
      method: "POST",
      as: "admin",
      json: { name: "x", targets: [{ type: "slack_channel", channel: "general" }] },
    });
    expect(bad.status).toBe(400);
  });
});

describe("routes by policy outcome", () => {
  test("a route limited to policy outcome require is told only of decisions a require rule sent to people", async () => {
    const kind = kindOf("policy");
    const policy = await t.request("/v1/policies", {
      method: "POST",
      as: "admin",
      json: {
        name: "large payouts need two people",
        expression: `decision.kind == "${kind}" && payload.amount > 1000`,
        outcome: "require",
        state: "enforce",
        required_approvals: 2,
      },
    });
    expect(policy.status).toBe(201);
    const created = await route({ kinds: [kind], policy_outcome: "require", targets: [{ type: "slack_channel", channel: "C0POLICY01" }] });
    expect(created.policy_outcome).toBe("require");

    const large = await createDecision(t, { kind, payload: { amount: 5000 } });
    const small = await createDecision(t, { kind, payload: { amount: 10 } });
    expect(large.required_approvals).toBe(2);
    await pump();
    const posts = postsTo("C0POLICY01").map((call) => JSON.stringify(call.params.blocks));
    expect(posts.filter((blocks) => blocks.includes(large.id))).toHaveLength(1);
    expect(posts.filter((blocks) => blocks.includes(small.id))).toHaveLength(0);
  });
});

describe("escalation deadlines", () => {
  test("nobody decides in time: the decision escalates one level, the next route is told, the audit trail says so", async () => {
    const kind = kindOf("deadline");
    await route({ kinds: [kind], level: 0, escalate_after_seconds: 10, targets: [{ type: "slack_channel", channel: "C0LEVEL000" }] });
    await route({ kinds: [kind], level: 1, targets: [{ type: "slack_channel", channel: "C0LEVEL001" }] });
    const decision = await createDecision(t, { kind });
    const ownDeadline = await createDecision(t, { kind, escalate_after: 30 });
    await pump();
    expect(postsTo("C0LEVEL001")).toHaveLength(0);

    expect(await escalateOnDeadline({ ...t.deps, clock: later(5_000) })).toBe(0);
    expect(await escalateOnDeadline({ ...t.deps, clock: later(11_000) })).toBe(1);
    const escalated = await decisionNow(decision.id);
    expect(escalated.escalation_level).toBe(1);
    expect((await decisionNow(ownDeadline.id)).escalation_level).toBe(0); // its own 30 s wins over the route's 10 s
    const [row] = (await auditTrail(t, decision.id)).filter((event) => event.type === "escalated");
    expect(row).toMatchObject({
      actorKeyId: null,
      reason: "no verdict within 10 s",
      data: { level: 1, automatic: true, escalate_after: 10 },
    });

    await pump();
    expect(postsTo("C0LEVEL001").filter((call) => JSON.stringify(call.params.blocks).includes(decision.id))).toHaveLength(1);
    // The first message is updated to show the new level.
    expect(
      slack
        .callsTo("chat.update")
        .some((call) => call.params.channel === "C0LEVEL000" && JSON.stringify(call.params.blocks).includes("level 1")),
    ).toBe(true);

    // Level 1 has no deadline of its own: no further escalation; the decision's own deadline escalates it at 30 s.
    expect(await escalateOnDeadline({ ...t.deps, clock: later(40_000) })).toBe(1);
    expect((await decisionNow(ownDeadline.id)).escalation_level).toBe(1);
    expect((await decisionNow(decision.id)).escalation_level).toBe(1);
  });
});

describe("the outbox across a restart", () => {
  test("rows written before a crash, and rows a dead replica had claimed, are sent once by the next process", async () => {
    const shared = await sharedDatabase();
    const first = await startTestApp({ env: env(), database: shared.first });
    const kind = kindOf("restart");
    const res = await first.request("/v1/notification-routes", {
      method: "POST",
      as: "admin",
      json: {
        name: "restart",
        kinds: [kind],
        targets: [
          { type: "slack_channel", channel: "C0RESTART1" },
          { type: "slack_channel", channel: "C0RESTART2" },
        ],
      },
    });
    expect(res.status).toBe(201);
    const decision = await createDecision(first, { kind });
    const firstNotify = notificationDeps(first.deps);
    while ((await dispatchNotificationEvents(firstNotify.dispatch)) > 0);
    // The first process claims one row, as a sender would, and dies before sending it.
    await first.deps.database.db.execute(
      sql`update ${notificationDeliveries} set locked_until = now() + interval '60 seconds', attempts = 1 where target = 'C0RESTART1'`,
    );
    await first.close();

    const second = await startTestApp({ env: env(), database: shared.second });
    try {
      const secondNotify = notificationDeps(second.deps);
      while ((await dispatchNotificationEvents(secondNotify.dispatch)) > 0); // nothing new, nothing doubled
      while ((await deliverDueNotifications(secondNotify.delivery)) > 0);
      expect(postsTo("C0RESTART2")).toHaveLength(1);
      expect(postsTo("C0RESTART1")).toHaveLength(0); // still claimed by the dead process
      const afterClaim = { ...secondNotify.delivery, clock: later(61_000) };
      while ((await deliverDueNotifications(afterClaim)) > 0);
      while ((await deliverDueNotifications(afterClaim)) > 0);
      expect(postsTo("C0RESTART1")).toHaveLength(1);
      expect(postsTo("C0RESTART2")).toHaveLength(1);
      const rows = await second.deps.database.db
        .select()
        .from(notificationDeliveries)
        .where(eq(notificationDeliveries.decisionId, decision.id));
      expect(rows.map((row) => row.status)).toEqual(["sent", "sent"]);
      const [stored] = await second.deps.database.db.select().from(decisions).where(eq(decisions.id, decision.id));
      expect(stored!.status).toBe("pending");
    } finally {
      await second.close();
      await shared.close();
    }
  });
});
