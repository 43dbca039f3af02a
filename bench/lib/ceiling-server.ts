/**
 * The HTTP ceilings, each its own process so its CPU and memory are measured like Arbiter's:
 *   bun:  bare Bun.serve answering a small JSON;
 *   hono: a bare Hono app (one c.json GET route) on Bun.serve.
 * Usage: bun run bench/lib/ceiling-server.ts <bun|hono> <port>
 */
import { Hono } from "hono";

const [kind, port] = process.argv.slice(2);
const body = { status: "ok", service: "ceiling" };

if (kind === "bun") {
  Bun.serve({ port: Number(port), hostname: "127.0.0.1", fetch: () => Response.json(body) });
} else if (kind === "hono") {
  const app = new Hono();
  app.get("/", (c) => c.json(body));
  Bun.serve({ port: Number(port), hostname: "127.0.0.1", fetch: app.fetch });
} else {
  console.error("usage: ceiling-server.ts <bun|hono> <port>");
  process.exit(2);
}
