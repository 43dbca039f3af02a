/**
 * The HTTP ceilings, each its own process so its CPU and memory are measured like Arbiter's:
 *   bun:  bare Bun.serve answering a small JSON;
 *   hono: a bare Hono app (one c.json GET route) on Bun.serve;
 *   answer: B1's answer without B1's work: a bare Hono app whose one GET route answers a
 *           decision-sized JSON (about 1 KB) with the headers Arbiter sends on it (Hono's secure
 *           headers, a request id, rate-limit state, traceparent, Cache-Control). The share of bare
 *           Hono's rate it keeps is what the answer itself costs: the most B1 could reach.
 *   hold: B4's ceiling, a bare Bun.serve that holds every GET (a long-poll) until any POST (the
 *         approval), then answers them all at once with a decision-sized JSON. It speaks just enough
 *         of Arbiter's paths for the same client process: `/metrics` reports the requests it holds.
 * Usage: bun run bench/lib/ceiling-server.ts <bun|hono|answer|hold> <port>
 */
import { Hono } from "hono";
import { secureHeaders } from "hono/secure-headers";

const [kind, port] = process.argv.slice(2);
const body = { status: "ok", service: "ceiling" };
// As long as the answer Arbiter gives for the benchmark's decision (about 1 KB): B1's reads, B4's waiters.
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
  approver_people: [],
  escalation_level: 0,
  escalate_after: null,
  on_timeout: "reject",
  requester_key_id: crypto.randomUUID(),
  requester_person_id: null,
  resolution_reason: "benchmark",
  payload_hash: "0".repeat(64),
  approved_payload: null,
  approved_payload_hash: null,
  effective_payload_hash: "0".repeat(64),
  callback_url: null,
  decided_by: "human",
  policy_id: null,
  policy_version: null,
  policy_evaluation: null,
  resolved_by: null,
  created_at: new Date().toISOString(),
  updated_at: new Date().toISOString(),
  expires_at: new Date().toISOString(),
  resolved_at: new Date().toISOString(),
  consumed_at: null,
  escalated_at: null,
});

if (kind === "bun") {
  Bun.serve({ port: Number(port), hostname: "127.0.0.1", fetch: () => Response.json(body) });
} else if (kind === "hono") {
  const app = new Hono();
  app.get("/", (c) => c.json(body));
  Bun.serve({ port: Number(port), hostname: "127.0.0.1", fetch: app.fetch });
} else if (kind === "answer") {
  const app = new Hono();
  app.use(secureHeaders({ strictTransportSecurity: "max-age=63072000; includeSubDomains" }));
  app.get("/", (c) => {
    c.header("X-Request-Id", crypto.randomUUID());
    c.header("RateLimit-Limit", "100000000");
    c.header("RateLimit-Remaining", "99999999");
    c.header("RateLimit-Reset", "60");
    const response = c.body(answer, 200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
    response.headers.set("traceparent", `00-${crypto.randomUUID().replaceAll("-", "")}-${"1".repeat(16)}-01`);
    return response;
  });
  Bun.serve({ port: Number(port), hostname: "127.0.0.1", fetch: app.fetch });
} else if (kind === "hold") {
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
  console.error("usage: ceiling-server.ts <bun|hono|answer|hold> <port>");
  process.exit(2);
}
