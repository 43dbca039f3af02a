import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import axe from "axe-core";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { act, createDecision } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";

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
    t = await startTestApp();
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

  async function newPage(options: { javaScriptEnabled?: boolean } = {}): Promise<Page> {
    const context = await browser.newContext(options);
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    page.on("console", (message) => {
      if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
    });
    return page;
  }

  async function signedIn(key: string, options: { javaScriptEnabled?: boolean } = {}): Promise<Page> {
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
      expect(cspViolations).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
