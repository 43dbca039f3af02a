import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { secureHeaders } from "hono/secure-headers";
import type { AppEnv } from "../../src/http/env";
import { aroundRequest, type RequestHook } from "../../src/http/request-hooks";
import { SECURITY_HEADERS, securityHeaders } from "../../src/http/security-headers";

describe("request hooks", () => {
  const tracing = (name: string, trail: string[]): RequestHook<string> => ({
    before: () => {
      trail.push(`before ${name}`);
      return `state of ${name}`;
    },
    after: (c, state) => {
      trail.push(`after ${name}: ${state}, finalized ${c.finalized}`);
      if (c.finalized) c.res.headers.append("X-Trail", name);
    },
  });

  test("before in order, after in reverse with each hook's own state, also around an error answered further in", async () => {
    const trail: string[] = [];
    const app = new Hono<AppEnv>();
    app.use(aroundRequest(tracing("a", trail), tracing("b", trail)));
    app.get("/ok", (c) => c.text("ok"));
    app.get("/boom", () => {
      throw new Error("handler failed");
    });
    app.onError((_, c) => c.text("answered", 500));

    for (const [path, status, body] of [
      ["/ok", 200, "ok"],
      ["/boom", 500, "answered"],
    ] as const) {
      const res = await app.request(path);
      expect([res.status, await res.text(), res.headers.get("X-Trail")]).toEqual([status, body, "b, a"]);
      expect(trail.splice(0)).toEqual([
        "before a",
        "before b",
        "after b: state of b, finalized true",
        "after a: state of a, finalized true",
      ]);
    }
  });

  test("after still runs when the request fails past every error handler, told the answer is not final", async () => {
    const trail: string[] = [];
    const app = new Hono<AppEnv>();
    app.use(aroundRequest(tracing("a", trail)));
    app.get("/thrown", () => {
      // Not an Error: Hono's error handler does not take it, so it leaves the app.
      throw "not an error";
    });
    await expect(app.request("/thrown")).rejects.toBe("not an error");
    expect(trail).toEqual(["before a", "after a: state of a, finalized false"]);
  });
});

test("the security headers are those of Hono's secureHeaders() with two years of HSTS, set over a route's own", async () => {
  const answer = async (app: Hono<AppEnv>) => {
    app.get("/", (c) => c.text("ok", 200, { "X-Frame-Options": "ALLOWALL" }));
    const res = await app.request("/");
    return Object.fromEntries([...res.headers].filter(([name]) => name !== "content-type"));
  };
  const hono = new Hono<AppEnv>();
  hono.use(secureHeaders({ strictTransportSecurity: "max-age=63072000; includeSubDomains" }));
  const ours = new Hono<AppEnv>();
  ours.use(aroundRequest(securityHeaders()));

  const expected = await answer(hono);
  expect(await answer(ours)).toEqual(expected);
  expect(Object.keys(expected)).toHaveLength(SECURITY_HEADERS.length);
  expect(expected["x-frame-options"]).toBe("SAMEORIGIN");
});
