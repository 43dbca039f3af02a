import { describe, expect, test } from "bun:test";
import { Hono, type MiddlewareHandler } from "hono";
import { asOneLayer } from "../../src/http/one-layer";

describe("middlewares as one layer", () => {
  test("members run in order on the way in and in reverse on the way out, also around an error answered further in", async () => {
    const trail: string[] = [];
    const member =
      (name: string): MiddlewareHandler =>
      async (c, next) => {
        trail.push(`in ${name}`);
        await next();
        trail.push(`out ${name}`);
        c.res.headers.append("X-Trail", name);
      };
    const app = new Hono();
    app.use(asOneLayer(member("a"), member("b"), member("c")));
    app.get("/ok", (c) => c.text("ok"));
    app.get("/boom", () => {
      throw new Error("handler failed");
    });
    app.onError((_, c) => c.text("answered", 500));

    const ok = await app.request("/ok");
    expect([ok.status, await ok.text(), ok.headers.get("X-Trail")]).toEqual([200, "ok", "c, b, a"]);
    expect(trail.splice(0)).toEqual(["in a", "in b", "in c", "out c", "out b", "out a"]);

    const boom = await app.request("/boom");
    expect([boom.status, await boom.text(), boom.headers.get("X-Trail")]).toEqual([500, "answered", "c, b, a"]);
    expect(trail).toEqual(["in a", "in b", "in c", "out c", "out b", "out a"]);
  });
});
