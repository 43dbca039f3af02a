/**
 * The HTTP ceilings, each its own process so its CPU and memory are measured like Arbiter's:
 *   bun:  bare Bun.serve answering a small JSON;
 *   hono: a bare Hono app (one c.json GET route) on Bun.serve;
 *   hold: B4's ceiling, a bare Bun.serve that holds every GET (a long-poll) until any POST (the
 *         approval), then answers them all at once with a decision-sized JSON. It speaks just enough
 *         of Arbiter's paths for the same client process: `/metrics` reports the requests it holds.
 * Usage: bun run bench/lib/ceiling-server.ts <bun|hono|hold> <port>
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
} else if (kind === "hold") {
  // As long as the answer Arbiter gives B4's waiters for the benchmark's decision (about 1 KB).
  const answer = JSON.stringify({
    id: crypto.randomUUID(),
    kind: "deploy",
    title: "Deploy api v1.2.3",
    payload: { service: "api", version: "1.2.3" },
    context: {},
    priority: "medium",
    status: "approved",
    required_approvals: 1,
    approvals: [crypto.randomUUID()],
    escalation_level: 0,
    on_timeout: "reject",
    requester_key_id: crypto.randomUUID(),
    requester_person_id: null,
    resolution_reason: "benchmark",
    payload_hash: "0".repeat(64),
    approved_payload: null,
    callback_url: null,
    decided_by: "human",
    policy_id: null,
    policy_version: null,
    created_at: new Date().toISOString(),
    updated_at: new Date().toISOString(),
    expires_at: new Date().toISOString(),
    resolved_at: new Date().toISOString(),
    consumed_at: null,
    escalated_at: null,
  });
  let held: ((response: Response) => void)[] = [];
  Bun.serve({
    port: Number(port),
    hostname: "127.0.0.1",
    idleTimeout: 120,
    fetch(request) {
      if (new URL(request.url).pathname === "/metrics") return new Response(`arbiter_decisions_waiters ${held.length}\n`);
      if (request.method === "POST") {
        const release = held;
        held = [];
        for (const answerOne of release) answerOne(new Response(answer, { headers: { "Content-Type": "application/json" } }));
        return Response.json(body);
      }
      return new Promise<Response>((resolve) => held.push(resolve));
    },
  });
} else {
  console.error("usage: ceiling-server.ts <bun|hono|hold> <port>");
  process.exit(2);
}
