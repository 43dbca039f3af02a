import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import axe from "axe-core";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { act, createDecision, extraKey } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";
import { consoleClient } from "./support";

/**
 * The console in a real browser (Debian's headless Chromium driven by playwright-core): sign-in,
 * live updates over the event stream, verdicts, the same without JavaScript, and an axe-core audit
 * of every page. In CI a missing Chromium fails the run; elsewhere the suite is skipped with a note.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? Bun.which("chromium") ?? "/usr/bin/chromium";
const missing = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} not found (install the Debian package chromium, or set CHROMIUM_PATH)`;
/** A browser on a loaded 2-core machine is slow: every test gets room, a hang still fails. */
const TEST_TIMEOUT_MS = 120_000;
if (missing && process.env.CI !== "true") console.warn(`console browser tests: skipping: ${missing}`);

describe.skipIf(Boolean(missing) && process.env.CI !== "true")("console in a browser", () => {
  let t: TestApp;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  /** Content Security Policy violations any page reported: there must be none. */
  const cspViolations: string[] = [];

  beforeAll(async () => {
    if (missing) throw new Error(`CI=true and the browser tests cannot run: ${missing}`);
    // Streams end every 2 s, so the reconnection a dropped connection causes happens within a test.
    t = await startTestApp({ env: { CONSOLE_STREAM_RECHECK_MS: "2000" } });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  type PageOptions = { javaScriptEnabled?: boolean; viewport?: { width: number; height: number }; colorScheme?: "light" | "dark" };

  async function newPage(options: PageOptions = {}): Promise<Page> {
    const context = await browser.newContext(options);
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    page.on("console", (message) => {
      if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
    });
    return page;
  }

  async function signedIn(key: string, options: PageOptions = {}): Promise<Page> {
    const page = await newPage(options);
    await page.goto(`${t.url}/console`);
    expect(new URL(page.url()).pathname).toBe("/console/login");
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { level: 1, name: "Pending decisions" }).waitFor();
    return page;
  }

  /** axe-core's WCAG 2.1 A/AA and best-practice rules on the page as it is now. */
  async function accessibilityViolations(page: Page): Promise<string[]> {
    // Evaluated through the DevTools protocol, which the page's CSP does not govern.
    await page.evaluate(axe.source);
    const results = await page.evaluate(() =>
      (window as unknown as { axe: typeof axe }).axe.run(document, {
        runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
      }),
    );
    return results.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
  }

  test(
    "an operator signs in and the queue follows the event stream as decisions arrive and are resolved",
    async () => {
      const page = await signedIn(t.keys.operator);
      await page.locator("body[data-stream=open]").waitFor();
      const decision = await createDecision(t, { title: "Rotate the payments database password", priority: "high" });
      const link = page.getByRole("link", { name: "Rotate the payments database password" });
      await link.waitFor();
      await page.locator("#live", { hasText: "A new decision is waiting." }).waitFor();
      expect(await link.getAttribute("href")).toBe(`/console/decisions/${decision.id}`);

      expect((await act(t, decision.id, "reject", "admin", { reason: "not now" })).status).toBe(200);
      await link.waitFor({ state: "detached" });
      await page.locator("#live", { hasText: "A decision was rejected." }).waitFor();
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "the queue reconnects after its stream drops and keeps following",
    async () => {
      const page = await signedIn(t.keys.operator);
      await page.locator("body[data-stream=open]").waitFor();
      await page.locator("body[data-stream=reconnecting]").waitFor();
      await page.locator("body[data-stream=open]").waitFor();
      await createDecision(t, { title: "Arrives after a reconnection" });
      await page.getByRole("link", { name: "Arrives after a reconnection" }).waitFor();
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "approving releases an API caller long-polling since before: it receives the verdict",
    async () => {
      const decision = await createDecision(t, { title: "Release 7.1 to everyone" });
      const waiter = t.request(`/v1/decisions/${decision.id}?wait=30`, { as: "service" });
      const page = await signedIn(t.keys.operator);
      expect(await Promise.race([waiter.then(() => "answered"), Bun.sleep(200).then(() => "waiting")])).toBe("waiting");
      await page.goto(`${t.url}/console/decisions/${decision.id}`);
      await page.getByRole("button", { name: "Approve" }).click();
      await page.getByRole("status").filter({ hasText: "You approved this decision." }).waitFor();
      const res = await waiter;
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ id: decision.id, status: "approved", resolved_by: t.keyIds.operator });
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "approve with edits: invalid JSON is refused before sending, a valid edit is approved",
    async () => {
      const decision = await createDecision(t, { title: "Resize the cache", payload: { nodes: 3 } });
      const page = await signedIn(t.keys.operator);
      await page.goto(`${t.url}/console/decisions/${decision.id}`);
      await page.getByText("Edit the payload before approving").click();
      const editor = page.getByLabel("Payload to approve (JSON)");
      await editor.fill('{"nodes": 4,');
      let posted = false;
      page.on("request", (request) => {
        if (request.method() === "POST") posted = true;
      });
      await page.getByRole("button", { name: "Approve" }).click();
      await page.locator("#approve-payload-error", { hasText: "Not valid JSON, nothing was sent" }).waitFor();
      expect(await editor.getAttribute("aria-invalid")).toBe("true");
      expect(posted).toBe(false);
      expect(new URL(page.url()).pathname).toBe(`/console/decisions/${decision.id}`);

      await editor.fill('{"nodes": 4}');
      await page.getByRole("button", { name: "Approve" }).click();
      await page.getByRole("status").filter({ hasText: "You approved this decision." }).waitFor();
      await page.getByRole("heading", { name: "Approved payload (edited)" }).waitFor();
      const res = await t.request(`/v1/decisions/${decision.id}`, { as: "service" });
      expect(await res.json()).toMatchObject({ status: "approved", payload: { nodes: 3 }, approved_payload: { nodes: 4 } });
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "reject with a reason, reached with the r shortcut",
    async () => {
      const decision = await createDecision(t, { title: "Drop the audit table" });
      const page = await signedIn(t.keys.operator);
      await page.goto(`${t.url}/console/decisions/${decision.id}`);
      await page.getByText("Keyboard:").waitFor();
      // Empty reason: the browser refuses to send the form.
      await page.getByRole("button", { name: "Reject" }).click();
      expect(await page.locator(".status").textContent()).toBe("pending");
      await page.locator("h1").click();
      await page.keyboard.press("r");
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("reject-reason");
      await page.keyboard.type("audits are kept for seven years");
      // Typing an "a" inside the field did not jump to Approve.
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("reject-reason");
      await page.getByRole("button", { name: "Reject" }).click();
      await page.getByRole("status").filter({ hasText: "You rejected this decision." }).waitFor();
      expect(await page.locator(".facts").textContent()).toContain("audits are kept for seven years");
      const res = await t.request(`/v1/decisions/${decision.id}`, { as: "service" });
      expect(await res.json()).toMatchObject({ status: "rejected", resolution_reason: "audits are kept for seven years" });
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "two operators on one decision: the second sees a conflict with the current state, not an error page",
    async () => {
      const decision = await createDecision(t, { title: "Fail over to the west region" });
      const second = await extraKey(t, "operator", "second-operator");
      const first = await signedIn(t.keys.operator);
      // The second operator's page was loaded before the first decided and has no script to notice.
      const late = await signedIn(second.key, { javaScriptEnabled: false });
      await first.goto(`${t.url}/console/decisions/${decision.id}`);
      await late.goto(`${t.url}/console/decisions/${decision.id}`);
      await first.getByRole("button", { name: "Approve" }).click();
      await first.getByRole("status").filter({ hasText: "You approved this decision." }).waitFor();
      const [response] = await Promise.all([
        late.waitForResponse((res) => res.request().method() === "POST"),
        late.getByRole("button", { name: "Approve" }).click(),
      ]);
      expect(response.status()).toBe(409);
      await late.getByRole("alert").filter({ hasText: "the decision is already approved" }).waitFor();
      expect(await late.getByRole("heading", { level: 1 }).textContent()).toBe("Fail over to the west region");
      expect(await late.locator(".status").textContent()).toBe("approved");
      expect(await late.getByRole("button", { name: "Approve" }).count()).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a quorum decision shows 1 of 2 after one approval, on its page and live in the queue",
    async () => {
      const decision = await createDecision(t, { title: "Wipe the old backups", required_approvals: 2 });
      const queue = await signedIn(t.keys.admin);
      await queue.locator("body[data-stream=open]").waitFor();
      const row = queue.locator(`tr[data-decision-id="${decision.id}"]`);
      expect(await row.locator(".approvals").textContent()).toBe("0 of 2");

      const page = await signedIn(t.keys.operator);
      await page.goto(`${t.url}/console/decisions/${decision.id}`);
      await page.locator("h1").click();
      await page.keyboard.press("a");
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Approve");
      await page.keyboard.press("Enter");
      await page.getByRole("status").filter({ hasText: "Your approval is recorded: 1 of 2." }).waitFor();
      expect(await page.locator(".facts").textContent()).toContain("1 of 2");
      await row.locator(".approvals", { hasText: "1 of 2" }).waitFor();
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a title, payload and reason carrying markup are shown as text, never run",
    async () => {
      const title = "<img src=x onerror=alert(1)>";
      const decision = await createDecision(t, { title, payload: { note: "<script>alert(2)</script>" } });
      const dialogs: string[] = [];
      const page = await signedIn(t.keys.admin);
      page.on("dialog", (dialog) => {
        dialogs.push(dialog.message());
        void dialog.dismiss();
      });
      await page.getByRole("link", { name: title }).waitFor();
      expect(await page.locator("main img").count()).toBe(0);
      await page.getByRole("link", { name: title }).click();
      expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe(title);
      expect(await page.locator("pre").first().textContent()).toContain("<script>alert(2)</script>");
      await page.getByLabel("Reason (required)").fill("<b onmouseover=alert(3)>no</b>");
      await page.getByRole("button", { name: "Reject" }).click();
      await page.getByRole("status").filter({ hasText: "You rejected this decision." }).waitFor();
      expect(await page.locator(".facts").textContent()).toContain("<b onmouseover=alert(3)>no</b>");
      expect(await page.locator("main img, main script, main b[onmouseover]").count()).toBe(0);
      expect(dialogs).toEqual([]);
      expect((await act(t, decision.id, "approve", "operator")).status).toBe(409);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a form whose CSRF token was removed is refused and changes nothing",
    async () => {
      const decision = await createDecision(t, { title: "Grant prod access to contractor" });
      const page = await signedIn(t.keys.operator);
      await page.goto(`${t.url}/console/decisions/${decision.id}`);
      await page.locator(".action-approve input[name=csrf]").evaluate((input) => input.remove());
      const [response] = await Promise.all([
        page.waitForResponse((res) => res.request().method() === "POST"),
        page.getByRole("button", { name: "Approve" }).click(),
      ]);
      expect(response.status()).toBe(403);
      await page.getByRole("alert").filter({ hasText: "CSRF token is missing or wrong" }).waitFor();
      const res = await t.request(`/v1/decisions/${decision.id}`, { as: "service" });
      expect(await res.json()).toMatchObject({ status: "pending", approvals: [] });
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "signing out revokes the session: the old cookie no longer works",
    async () => {
      const page = await signedIn(t.keys.operator);
      const cookie = (await page.context().cookies()).find((c) => c.name === "arbiter_console");
      expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/console" });
      const old = consoleClient(t, `arbiter_console=${cookie!.value}`);
      expect((await old.get("/console")).status).toBe(200);
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { level: 1, name: "Sign in" }).waitFor();
      expect((await page.context().cookies()).some((c) => c.name === "arbiter_console")).toBe(false);
      const again = await old.get("/console");
      expect(again.status).toBe(303);
      expect(again.headers.get("location")).toBe("/console/login");
      expect((await old.get("/console/stream")).status).toBe(401);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "approving from the decision page records the verdict and says so",
    async () => {
      const decision = await createDecision(t, { title: "Deploy checkout 2.4.2" });
      const page = await signedIn(t.keys.operator);
      await page.getByRole("link", { name: "Deploy checkout 2.4.2" }).click();
      await page.getByRole("heading", { level: 1, name: "Deploy checkout 2.4.2" }).waitFor();
      expect(await page.locator("pre").first().textContent()).toContain('"service": "checkout"');
      await page.getByLabel("Reason (optional)").first().fill("canary is green");
      await page.getByRole("button", { name: "Approve" }).click();
      await page.getByRole("status").filter({ hasText: "You approved this decision." }).waitFor();
      expect(await page.locator(".status").textContent()).toBe("approved");
      const res = await t.request(`/v1/decisions/${decision.id}`, { as: "admin" });
      expect(await res.json()).toMatchObject({ status: "approved", resolved_by: t.keyIds.operator, resolution_reason: "canary is green" });
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a decision page shows when someone else decides, and disables its forms",
    async () => {
      const decision = await createDecision(t, { title: "Open port 22 to the bastion" });
      const page = await signedIn(t.keys.operator);
      await page.goto(`${t.url}/console/decisions/${decision.id}`);
      await page.locator("body[data-stream=open]").waitFor();
      expect(await page.locator("#stale").isHidden()).toBe(true);
      expect((await act(t, decision.id, "reject", "admin", { reason: "use the VPN" })).status).toBe(200);
      await page.locator("#stale").waitFor({ state: "visible" });
      expect(await page.getByRole("button", { name: "Approve" }).isDisabled()).toBe(true);
      expect(await page.getByRole("button", { name: "Reject" }).isDisabled()).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "without JavaScript the console still signs in, rejects and signs out",
    async () => {
      const decision = await createDecision(t, { title: "Delete the staging bucket" });
      const page = await signedIn(t.keys.admin, { javaScriptEnabled: false });
      await page.getByRole("link", { name: "Delete the staging bucket" }).click();
      await page.getByLabel("Reason (required)").fill("it still holds fixtures");
      await page.getByRole("button", { name: "Reject" }).click();
      await page.getByRole("status").filter({ hasText: "You rejected this decision." }).waitFor();
      expect(await page.locator(".status").textContent()).toBe("rejected");
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { level: 1, name: "Sign in" }).waitFor();
      await page.goto(`${t.url}/console/decisions/${decision.id}`);
      expect(new URL(page.url()).pathname).toBe("/console/login");
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "every page passes axe-core's WCAG 2.1 AA checks, and no page breaks its own CSP",
    async () => {
      const anonymous = await newPage();
      await anonymous.goto(`${t.url}/console/login`);
      expect(await accessibilityViolations(anonymous)).toEqual([]);
      await anonymous.getByLabel("API key").fill("arb_wrong");
      await anonymous.getByRole("button", { name: "Sign in" }).click();
      await anonymous.getByRole("alert").waitFor();
      expect(await accessibilityViolations(anonymous)).toEqual([]);

      const decision = await createDecision(t, { title: "Scale the workers to 40", required_approvals: 2 });
      const page = await signedIn(t.keys.admin);
      expect(await accessibilityViolations(page)).toEqual([]);
      await page.goto(`${t.url}/console/decisions/${decision.id}`);
      expect(await accessibilityViolations(page)).toEqual([]);
      await page.getByRole("button", { name: "Approve" }).click();
      await page.getByRole("status").filter({ hasText: "Your approval is recorded: 1 of 2." }).waitFor();
      expect(await accessibilityViolations(page)).toEqual([]);
      await page.goto(`${t.url}/console/decisions/${crypto.randomUUID()}`);
      expect(await accessibilityViolations(page)).toEqual([]);
      await page.goto(`${t.url}/console/history`);
      expect(await accessibilityViolations(page)).toEqual([]);

      // Phone width in dark mode: the same checks (contrast included) on the queue and a decision.
      const phone = await signedIn(t.keys.operator, { viewport: { width: 390, height: 844 }, colorScheme: "dark" });
      expect(await accessibilityViolations(phone)).toEqual([]);
      await phone.goto(`${t.url}/console/decisions/${decision.id}`);
      expect(await accessibilityViolations(phone)).toEqual([]);
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      expect(cspViolations).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
