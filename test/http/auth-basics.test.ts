import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestApp, type TestApp } from "../helpers/app";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

describe("test app", () => {
  test("serves health and creates a key per role", async () => {
    const res = await t.request("/health/ready");
    expect(res.status).toBe(200);
    expect((await res.json()).status).toBe("pass");
    expect(t.keys.admin).toMatch(/^arb_[0-9A-Za-z]{49}$/);
  });
});
