import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import type { AppEnv } from "../../src/http/env";
import { ApiError, errorResponse } from "../../src/http/errors";
import { requestTimeout } from "../../src/http/middleware";

const TIMEOUT_MS = 100;
// The sweep runs every tenth of the timeout: an answer may come that much late, plus scheduling.
const LATEST_MS = TIMEOUT_MS * 1.1 + 400;

function appWithTimeout() {
  const app = new Hono<AppEnv>();
  app.use(requestTimeout(TIMEOUT_MS));
  const never = () => new Promise<Response>(() => {});
  app.get("/hang", never);
  app.get("/slow", async (c) => {
    await Bun.sleep(TIMEOUT_MS / 2);
    return c.text("done");
  });
  app.get("/boom", async () => {
    throw new ApiError(409, "conflict", "from the handler");
  });
  app.get("/stream", never);
  app.onError((error, c) => (error instanceof ApiError ? errorResponse(c, error) : c.text("internal", 500)));
  return app;
}

async function timed(app: Hono<AppEnv>, path: string) {
  const started = performance.now();
  const res = await app.request(path);
  return { res, ms: performance.now() - started };
}

describe("request timeout", () => {
  test("a request still running past the timeout is answered 503 request_timeout with Retry-After, on time", async () => {
    const app = appWithTimeout();
    const { res, ms } = await timed(app, "/hang");
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("request_timeout");
    expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 1);
    expect(ms).toBeLessThan(LATEST_MS);
  });

  test("many requests in flight at once each get their own answer: timed out, finished, or the handler's error", async () => {
    const app = appWithTimeout();
    const answers = await Promise.all(
      ["/hang", "/slow", "/boom", "/hang", "/slow"].map(async (path) => {
        const { res, ms } = await timed(app, path);
        return { path, status: res.status, ms };
      }),
    );
    expect(answers.map((a) => [a.path, a.status])).toEqual([
      ["/hang", 503],
      ["/slow", 200],
      ["/boom", 409],
      ["/hang", 503],
      ["/slow", 200],
    ]);
    for (const a of answers) expect(a.ms).toBeLessThan(LATEST_MS);
    // Requests that started later are timed from their own start, not from the first one's.
    await Bun.sleep(TIMEOUT_MS / 2);
    const late = await timed(app, "/hang");
    expect(late.res.status).toBe(503);
    expect(late.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 1);
  });

  test("event streams and long-polls are not bounded by it", async () => {
    const app = appWithTimeout();
    for (const path of ["/stream", "/hang?wait=30"]) {
      const outcome = await Promise.race([
        Promise.resolve(app.request(path)).then(() => "answered"),
        Bun.sleep(LATEST_MS + 100).then(() => "still held"),
      ]);
      expect(outcome).toBe("still held");
    }
  });
});
