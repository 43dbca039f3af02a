import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { eq } from "drizzle-orm";
import { sha256Hex } from "../../src/crypto/hash";
import { authEvents, operatorSessions } from "../../src/db/schema";
import { act, auditTrail, createDecision, readSse } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";
import { consoleClient, signIn } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/** The console over plain HTTP: sessions, CSRF, headers, and verdicts through the API's own rules. */
let t: TestApp;

beforeAll(async () => {
  t = await startTestApp();
}, 60_000);
afterAll(() => t.close());

const decisionUrl = (id: string) => `/console/decisions/${id}`;

describe("console sessions", () => {
  test("without a session, pages send the browser to the sign-in form and the stream is 401", async () => {
    const anonymous = consoleClient(t);
    for (const path of ["/console", "/console/", decisionUrl(crypto.randomUUID())]) {
      const res = await anonymous.get(path);
      expect(res.status).toBe(303);
      expect(res.headers.get("location")).toBe("/console/login");
    }
    const stream = await anonymous.get("/console/stream");
    expect(stream.status).toBe(401);
    const login = await anonymous.get("/console/login");
    expect(login.status).toBe(200);
    expect(await login.text()).toContain('<label for="api_key">API key</label>');
  });

  test("signing in issues a revocable token in an HttpOnly, SameSite=Strict cookie narrowed to the console's permissions", async () => {
    const admin = await signIn(t, t.keys.admin);
    expect(admin.setCookie).toMatch(/^arbiter_console=[\w-]+\.[\w-]+\.[\w-]+;/);
    expect(admin.setCookie).toContain("HttpOnly");
    expect(admin.setCookie).toContain("SameSite=Strict");
    expect(admin.setCookie).toContain("Path=/console");
    expect(admin.setCookie).toMatch(/Max-Age=3600/);
    const sessions = await t.deps.database.db.select().from(operatorSessions).where(eq(operatorSessions.keyId, t.keyIds.admin));
    expect(sessions.at(-1)!.permissions).toEqual(["decisions:read", "decisions:resolve", "decisions:escalate"]);
    const page = await admin.get("/console");
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("Signed in as <strong>test-admin</strong>");
    // The cookie is not an API credential: /v1 ignores it.
    expect((await admin.get("/v1/decisions/pending")).status).toBe(401);
  });

  test("a wrong key, a service key and an empty form are refused and audited; nothing is set", async () => {
    const anonymous = consoleClient(t);
    const wrong = await anonymous.post("/console/login", { api_key: "arb_not-a-key" });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("set-cookie")).toBeNull();
    expect(await wrong.text()).toContain("That key was not accepted");
    const service = await anonymous.post("/console/login", { api_key: t.keys.service });
    expect(service.status).toBe(401);
    expect(await service.text()).toContain("service keys cannot sign in to the console");
    expect((await anonymous.post("/console/login", {})).status).toBe(400);
    await t.app.flush();
    const failures = await t.deps.database.db.select().from(authEvents).where(eq(authEvents.outcome, "failure"));
    expect(failures.some((row) => row.actorKeyId === t.keyIds.service && row.reason === "invalid_key")).toBe(true);
  });

  test("signing out revokes the session: the old cookie no longer works", async () => {
    const operator = await signIn(t, t.keys.operator);
    const out = await operator.post("/console/logout");
    expect(out.status).toBe(303);
    expect(out.headers.get("location")).toBe("/console/login");
    expect(out.headers.get("set-cookie")).toMatch(/arbiter_console=;.*Max-Age=0/);
    const again = await operator.get("/console");
    expect(again.status).toBe(303);
    expect(again.headers.get("location")).toBe("/console/login");
  });

  test("forms from another site are refused (CSRF), sign-in included", async () => {
    const operator = await signIn(t, t.keys.operator);
    const decision = await createDecision(t);
    const forged = await operator.post(`${decisionUrl(decision.id)}/approve`, {}, { Origin: "https://evil.example" });
    expect(forged.status).toBe(403);
    const crossSite = await operator.post(`${decisionUrl(decision.id)}/approve`, {}, { "Sec-Fetch-Site": "cross-site" });
    expect(crossSite.status).toBe(403);
    const login = await consoleClient(t).post("/console/login", { api_key: t.keys.admin }, { Origin: "https://evil.example" });
    expect(login.status).toBe(403);
    expect(login.headers.get("set-cookie")).toBeNull();
    expect((await auditTrail(t, decision.id)).map((row) => row.type)).toEqual(["created"]);
  });

  test("a signed-in form must carry the session's CSRF token: missing, wrong or another session's is refused", async () => {
    const operator = await signIn(t, t.keys.operator);
    const other = await signIn(t, t.keys.admin);
    const decision = await createDecision(t);
    const approve = `${decisionUrl(decision.id)}/approve`;
    const withoutToken = consoleClient(t, operator.cookie);
    for (const res of [
      await withoutToken.post(approve),
      await withoutToken.post(approve, { csrf: "" }),
      await withoutToken.post(approve, { csrf: "0".repeat(64) }),
      await withoutToken.post(approve, { csrf: other.csrf }),
      await withoutToken.post("/console/logout"),
    ]) {
      expect(res.status).toBe(403);
      expect(await res.text()).toContain("CSRF token is missing or wrong");
    }
    expect((await auditTrail(t, decision.id)).map((row) => row.type)).toEqual(["created"]);
    // The refused sign-out left the session alive; with its token the form goes through.
    expect((await operator.get("/console")).status).toBe(200);
    expect((await operator.post(approve)).status).toBe(303);
    const html = await (await operator.get(decisionUrl(decision.id))).text();
    expect(html).toContain(`<input type="hidden" name="csrf" value="${operator.csrf}"/>`);
  });

  test("pages carry a strict Content Security Policy and are not cached", async () => {
    const admin = await signIn(t, t.keys.admin);
    const res = await admin.get("/console");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("strict-transport-security")).toBe("max-age=63072000; includeSubDomains");
    const html = await res.text();
    const files = [...html.matchAll(/"\/console\/assets\/(console\.([0-9a-f]{12})\.(js|css))"/g)];
    expect(files.map((m) => m[3]).sort()).toEqual(["css", "js"]);
    for (const [, name, hash, extension] of files) {
      const asset = await consoleClient(t).get(`/console/assets/${name}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get("content-type")).toContain(extension === "js" ? "text/javascript" : "text/css");
      expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      const body = await asset.text();
      // Named by their content, small, and served by the app itself (no other origin).
      expect(sha256Hex(body).slice(0, 12)).toBe(hash!);
      expect(body.length).toBeLessThan(12_000);
      expect(body).not.toMatch(/https?:\/\//);
    }
    expect((await admin.get("/console/assets/console.js")).status).toBe(404);
  });
});

describe("console verdicts", () => {
  test("the queue lists pending decisions, highest priority first, with escaped titles", async () => {
    const low = await createDecision(t, { title: "Low <b>bold</b>", priority: "low" });
    const critical = await createDecision(t, { title: "Critical one", priority: "critical" });
    const admin = await signIn(t, t.keys.admin);
    const html = await (await admin.get("/console")).text();
    expect(html.indexOf(critical.id)).toBeGreaterThan(-1);
    expect(html.indexOf(critical.id)).toBeLessThan(html.indexOf(low.id));
    expect(html).toContain("Low &lt;b&gt;bold&lt;/b&gt;");
    expect(html).not.toContain("<b>bold</b>");
  });

  test("the queue pages with its cursor, keeping the page size", async () => {
    await createDecision(t, { title: "Paging one" });
    await createDecision(t, { title: "Paging two" });
    const admin = await signIn(t, t.keys.admin);
    const first = await (await admin.get("/console?limit=1")).text();
    const next = /<a href="(\/console\?limit=1&amp;cursor=[^"]+)">Next page<\/a>/.exec(first)?.[1];
    expect(next).toBeDefined();
    const second = await (await admin.get(next!.replaceAll("&amp;", "&"))).text();
    const idsOf = (html: string) => [...html.matchAll(/data-decision-id="([^"]+)"/g)].map((m) => m[1]);
    expect(idsOf(first)).toHaveLength(1);
    expect(idsOf(second)).toHaveLength(1);
    expect(idsOf(second)[0]).not.toBe(idsOf(first)[0]);
    expect(second).toContain('<a href="/console?limit=1">First page</a>');
  });

  test("approve, reject and escalate through forms follow the API's rules", async () => {
    const operator = await signIn(t, t.keys.operator);
    const first = await createDecision(t);
    const approved = await operator.post(`${decisionUrl(first.id)}/approve`, { reason: "looks fine" });
    expect(approved.status).toBe(303);
    expect(approved.headers.get("location")).toBe(`${decisionUrl(first.id)}?done=approve`);
    const page = await (await operator.get(approved.headers.get("location")!)).text();
    expect(page).toContain("You approved this decision.");
    expect(page).toContain("looks fine");
    const trail = await auditTrail(t, first.id);
    expect(trail.at(-1)).toMatchObject({ type: "approved", actorKeyId: t.keyIds.operator, reason: "looks fine" });

    // Already decided: the page says so, with the API's status.
    const late = await operator.post(`${decisionUrl(first.id)}/reject`, { reason: "too late" });
    expect(late.status).toBe(409);
    expect(await late.text()).toContain("the decision is already approved");

    const second = await createDecision(t);
    const noReason = await operator.post(`${decisionUrl(second.id)}/reject`, { reason: "  " });
    expect(noReason.status).toBe(400);
    expect(await noReason.text()).toContain("A rejection needs a reason.");
    expect((await operator.post(`${decisionUrl(second.id)}/escalate`, {})).status).toBe(303);
    // Escalated: only an admin may now resolve it.
    const refused = await operator.post(`${decisionUrl(second.id)}/reject`, { reason: "no" });
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain("an admin must resolve it");
    const admin = await signIn(t, t.keys.admin);
    expect((await admin.post(`${decisionUrl(second.id)}/reject`, { reason: "no" })).status).toBe(303);
    expect((await auditTrail(t, second.id)).map((row) => row.type)).toEqual(["created", "escalated", "rejected"]);
  });

  test("approving with the payload field: unchanged approves the request, changed approves the edit, bad JSON is a 400", async () => {
    const admin = await signIn(t, t.keys.admin);
    const asShown = await createDecision(t);
    const page = await (await admin.get(decisionUrl(asShown.id))).text();
    expect(page).toContain("Edit the payload before approving");
    expect(page).toContain("<dt>Requested by</dt><dd><strong>test-service</strong>");
    const reordered = JSON.stringify({
      version: "2.4.1",
      service: "checkout",
      rollout: { regions: ["eu-west-1", "us-east-1"], percent: 100 },
    });
    expect((await admin.post(`${decisionUrl(asShown.id)}/approve`, { payload: reordered })).status).toBe(303);
    let body = await (await t.request(`/v1/decisions/${asShown.id}`, { as: "admin" })).json();
    expect(body).toMatchObject({ status: "approved", approved_payload: null, effective_payload_hash: asShown.payload_hash });

    const edited = await createDecision(t);
    for (const [payload, status] of [
      ["{not json", 400],
      ['{"__proto__": {"admin": true}}', 400],
      ['{"a": "nul\u0000"}', 400],
      ["[".repeat(100), 400],
    ] as const) {
      const res = await admin.post(`${decisionUrl(edited.id)}/approve`, { payload });
      expect(res.status).toBe(status);
      expect(await res.text()).toContain('role="alert"');
    }
    expect((await admin.post(`${decisionUrl(edited.id)}/approve`, { payload: '{"service": "checkout", "version": "2.4.0"}' })).status).toBe(
      303,
    );
    body = await (await t.request(`/v1/decisions/${edited.id}`, { as: "admin" })).json();
    expect(body).toMatchObject({ status: "approved", approved_payload: { service: "checkout", version: "2.4.0" } });
    expect(body.effective_payload_hash).not.toBe(edited.payload_hash);

    const quorum = await createDecision(t, { required_approvals: 2 });
    expect(await (await admin.get(decisionUrl(quorum.id))).text()).not.toContain("Edit the payload before approving");
    const refused = await admin.post(`${decisionUrl(quorum.id)}/approve`, { payload: "{}" });
    expect(refused.status).toBe(422);
    expect((await auditTrail(t, quorum.id)).map((row) => row.type)).toEqual(["created"]);
  });

  test("the queue shows the requester, approvals so far of required, and the time left", async () => {
    const decision = await createDecision(t, { title: "Quorum of two", required_approvals: 2, expires_in: 3600 });
    expect((await act(t, decision.id, "approve", "operator")).status).toBe(200);
    const admin = await signIn(t, t.keys.admin);
    const html = await (await admin.get("/console")).text();
    const row = html.slice(html.indexOf(`data-decision-id="${decision.id}"`)).split("</tr>")[0]!;
    expect(row).toContain(`<span title="${t.keyIds.service}">test-service</span>`);
    expect(row).toContain(">1 of 2<");
    expect(row).toMatch(/>in (59|60) min</);
  });

  test("the requester of a decision is not offered the approve form, and cannot post it", async () => {
    const decision = await createDecision(t, { title: "My own request" }, "admin");
    const admin = await signIn(t, t.keys.admin);
    const html = await (await admin.get(decisionUrl(decision.id))).text();
    expect(html).not.toContain(`/approve"`);
    expect(html).toContain(`/reject"`);
    expect(html).toContain("You requested this decision: someone else must approve it.");
    const res = await admin.post(`${decisionUrl(decision.id)}/approve`);
    expect(res.status).toBe(403);
    expect(await res.text()).toContain("the requester cannot approve its own decision");
  });

  test("the history lists resolved decisions only, filtered by status, kind, requester and time, with cursor paging", async () => {
    const kind = `history.${crypto.randomUUID().slice(0, 8)}`;
    const made = [];
    for (const n of [1, 2, 3]) made.push(await createDecision(t, { kind, title: `History ${n}` }));
    const pending = await createDecision(t, { kind, title: "History pending" });
    expect((await act(t, made[0]!.id, "approve", "operator")).status).toBe(200);
    expect((await act(t, made[1]!.id, "reject", "operator", { reason: "no" })).status).toBe(200);
    expect((await act(t, made[2]!.id, "reject", "operator", { reason: "no" })).status).toBe(200);
    const readonly = await signIn(t, t.keys.readonly);
    const titles = async (query: string) => {
      const res = await readonly.get(`/console/history?${query}`);
      expect(res.status).toBe(200);
      const html = await res.text();
      return { titles: [...html.matchAll(/>(History [^<]+)<\/a>/g)].map((m) => m[1]), html };
    };
    expect((await titles(`kind=${kind}`)).titles).toEqual(["History 3", "History 2", "History 1"]);
    expect((await titles(`kind=${kind}&status=rejected`)).titles).toEqual(["History 3", "History 2"]);
    expect((await titles(`kind=${kind}&requester=${t.keyIds.service}`)).titles).toHaveLength(3);
    expect((await titles(`kind=${kind}&requester=${t.keyIds.admin}`)).titles).toEqual([]);
    const later = new Date(Date.now() + 3_600_000).toISOString().slice(0, 16);
    expect((await titles(`kind=${kind}&from=${later}`)).titles).toEqual([]);
    expect((await titles(`kind=${kind}&to=${later}`)).titles).toHaveLength(3);
    expect((await titles(`kind=${kind}`)).html).not.toContain(pending.id);
    // Pending decisions are left out by the query, not the page: the newest (pending) one does not eat a row.
    expect((await titles(`kind=${kind}&limit=1`)).titles).toEqual(["History 3"]);

    const first = await titles(`kind=${kind}&status=rejected&limit=1`);
    expect(first.titles).toEqual(["History 3"]);
    const next = /href="(\/console\/history\?[^"]+)">Next page/.exec(first.html)?.[1]?.replaceAll("&amp;", "&");
    expect(next).toContain(`kind=${encodeURIComponent(kind)}`);
    expect(next).toContain("status=rejected");
    expect(next).toContain("limit=1");
    const second = await titles(next!.split("?")[1]!);
    expect(second.titles).toEqual(["History 2"]);
    expect(second.html).toContain("First page");
    // A readonly viewer has nothing to post but signing out.
    expect(second.html).not.toMatch(/action="\/console\/decisions/);
  });

  test("a readonly session sees decisions but no verdict forms, and cannot post one", async () => {
    const decision = await createDecision(t);
    const readonly = await signIn(t, t.keys.readonly);
    const html = await (await readonly.get(decisionUrl(decision.id))).text();
    expect(html).toContain(decision.payload_hash);
    expect(html).not.toContain("/approve");
    const res = await readonly.post(`${decisionUrl(decision.id)}/approve`);
    expect(res.status).toBe(403);
    expect((await auditTrail(t, decision.id)).map((row) => row.type)).toEqual(["created"]);
  });

  test("bad input is a 4xx page, never a 5xx", async () => {
    const admin = await signIn(t, t.keys.admin);
    const decision = await createDecision(t);
    const cases: [Promise<Response>, number][] = [
      [admin.get("/console/decisions/not-a-uuid"), 404],
      [admin.get(decisionUrl(crypto.randomUUID())), 404],
      [admin.get("/console?cursor=garbage"), 400],
      [admin.get("/console?limit=0"), 400],
      [admin.get("/console?surprise=1"), 400],
      [admin.post(`${decisionUrl(decision.id)}/approve`, { reason: "nul\u0000byte" }), 400],
      [admin.post(`${decisionUrl(decision.id)}/approve`, { reason: "x".repeat(2001) }), 400],
      [admin.post(`${decisionUrl(decision.id)}/teleport`, {}), 404],
      // A body that is not a form carries no CSRF token.
      [admin.post(`${decisionUrl(decision.id)}/approve`, {}, { "Content-Type": "application/json" }), 403],
      [admin.get("/console/history?status=sideways"), 400],
      [admin.get("/console/history?requester=nobody"), 400],
      [admin.get("/console/history?from=yesterday"), 400],
      [admin.get("/console/history?cursor=garbage"), 400],
      [admin.get("/console/history?surprise=1"), 400],
      [admin.post("/console/login", { api_key: "\u0000" }), 400],
      [admin.get("/console/stream", { "Last-Event-ID": "nope" }), 400],
    ];
    for (const [pending, status] of cases) {
      const res = await pending;
      const body = await res.text();
      expect({ url: res.url, status: res.status }).toEqual({ url: res.url, status });
      expect(res.headers.get("content-type")).toContain("text/html");
      expect(body).not.toMatch(/at \w+ \(|SELECT|stack/i);
    }
    expect((await auditTrail(t, decision.id)).map((row) => row.type)).toEqual(["created"]);
  });
});

describe("console stream", () => {
  test("the session's stream delivers decision events as Server-Sent Events", async () => {
    const operator = await signIn(t, t.keys.operator);
    const res = await operator.get("/console/stream");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const decision = await createDecision(t);
    const [event] = await readSse(res, 1);
    expect(event).toMatchObject({ event: "created", data: { decision_id: decision.id, to_status: "pending" } });
  });

  test("a page's stream starts after the last event before the page was read, so nothing in between is missed", async () => {
    const operator = await signIn(t, t.keys.operator);
    const html = await (await operator.get("/console")).text();
    const after = /data-stream-after="(\d+)"/.exec(html)?.[1];
    expect(after).toBeDefined();
    // A decision arrives after the page was read and before its script connects.
    const decision = await createDecision(t, { title: "Between render and connect" });
    const res = await operator.get(`/console/stream?last_event_id=${after}`);
    expect(res.status).toBe(200);
    const [event] = await readSse(res, 1);
    expect(event).toMatchObject({ event: "created", data: { decision_id: decision.id } });
    for (const query of ["last_event_id=soon", "surprise=1"]) expect((await operator.get(`/console/stream?${query}`)).status).toBe(400);
  });
});

describe("console behind a proxy, with tight limits", () => {
  let p: TestApp;
  beforeAll(async () => {
    p = await startTestApp({ env: { AUTH_FAILURE_LIMIT: "2", CONSOLE_STREAM_RECHECK_MS: "1000", TRUST_PROXY_HOPS: "1" } });
  }, 60_000);
  afterAll(() => p.close());

  test("failed sign-ins are throttled per address, shared with the API's failure budget", async () => {
    const from = { "X-Forwarded-For": "203.0.113.7" };
    const anonymous = consoleClient(p);
    expect((await anonymous.post("/console/login", { api_key: "arb_wrong" }, from)).status).toBe(401);
    expect((await fetch(`${p.url}/v1/decisions`, { headers: { "X-API-Key": "arb_wrong", ...from } })).status).toBe(401);
    const throttled = await anonymous.post("/console/login", { api_key: p.keys.admin }, from);
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get("set-cookie")).toBeNull();
    // Another address is not affected.
    expect((await anonymous.post("/console/login", { api_key: p.keys.admin }, { "X-Forwarded-For": "203.0.113.8" })).status).toBe(303);
  });

  test("the cookie is Secure when a trusted proxy says the request came over HTTPS", async () => {
    const res = await consoleClient(p).post(
      "/console/login",
      { api_key: p.keys.operator },
      { "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https" },
    );
    expect(res.status).toBe(303);
    expect(res.headers.get("set-cookie")).toContain("Secure");
  });

  test("the cookie is Secure on plain HTTP except on a loopback address", async () => {
    const signInAt = (host: string) =>
      consoleClient(p).post(
        "/console/login",
        { api_key: p.keys.operator },
        { Host: host, Origin: `http://${host}`, "X-Forwarded-For": "203.0.113.10" },
      );
    for (const host of ["console.example", "10.0.0.5:8080"]) {
      const res = await signInAt(host);
      expect(res.status).toBe(303);
      expect(res.headers.get("set-cookie")).toContain("; Secure");
    }
    for (const host of ["localhost:3000", "127.0.0.1"]) {
      const res = await signInAt(host);
      expect(res.status).toBe(303);
      expect(res.headers.get("set-cookie")).not.toContain("Secure");
    }
  });

  test("the stream ends every CONSOLE_STREAM_RECHECK_MS; after sign-out, reconnecting is refused", async () => {
    const operator = await signIn(p, p.keys.operator);
    const started = Date.now();
    const stream = await operator.get("/console/stream");
    expect(stream.status).toBe(200);
    expect(await readSse(stream, 1)).toEqual([]); // ended by the server, with no event
    expect(Date.now() - started).toBeLessThan(10_000);
    await operator.post("/console/logout");
    expect((await operator.get("/console/stream")).status).toBe(401);
  });
});
