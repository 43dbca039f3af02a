import { hmacSha256Hex } from "../../src/crypto/hash";

/** One Web API call as the fake Slack received it (form fields, JSON ones parsed). */
export interface SlackCall {
  method: string;
  token: string | null;
  // biome-ignore lint/suspicious/noExplicitAny: Slack's form fields, some JSON
  params: Record<string, any>;
}

/**
 * A loopback server speaking the parts of Slack's Web API Arbiter uses (chat.postMessage, chat.update,
 * chat.postEphemeral, views.open): it records every call and answers like Slack, including HTTP 429
 * with Retry-After when told to.
 */
export function startFakeSlack(token: string) {
  const calls: SlackCall[] = [];
  let rateLimited: { times: number; retryAfterSeconds: number } | undefined;
  let sequence = 0;
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      const method = new URL(request.url).pathname.replace(/^\/api\//, "").replace(/^\//, "");
      const authorization = request.headers.get("authorization");
      const form = new URLSearchParams(await request.text());
      const params: SlackCall["params"] = {};
      for (const [key, value] of form) {
        try {
          params[key] = key === "blocks" || key === "view" ? JSON.parse(value) : value;
        } catch {
          params[key] = value;
        }
      }
      calls.push({ method, token: authorization?.replace(/^Bearer /, "") ?? null, params });
      if (rateLimited && rateLimited.times > 0) {
        rateLimited.times--;
        return new Response("", { status: 429, headers: { "Retry-After": String(rateLimited.retryAfterSeconds) } });
      }
      if (authorization !== `Bearer ${token}`) return Response.json({ ok: false, error: "invalid_auth" });
      switch (method) {
        case "chat.postMessage":
          return Response.json({
            ok: true,
            channel: params.channel.startsWith("#") ? "C0PUBLIC01" : params.channel,
            ts: `1700000000.${String(++sequence).padStart(6, "0")}`,
          });
        case "chat.update":
          return Response.json({ ok: true, channel: params.channel, ts: params.ts });
        case "chat.postEphemeral":
          return Response.json({ ok: true, message_ts: "1700000000.999999" });
        case "views.open":
          return Response.json({ ok: true, view: { id: "V0001" } });
        default:
          return Response.json({ ok: false, error: "unknown_method" });
      }
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}/api/`,
    calls,
    callsTo: (method: string) => calls.filter((call) => call.method === method),
    /** the next `times` calls answer HTTP 429 with Retry-After */
    rateLimit(times: number, retryAfterSeconds: number) {
      rateLimited = { times, retryAfterSeconds };
    },
    stop: () => server.stop(true),
  };
}

/** An interaction request as Slack sends it: form-encoded `payload`, signed with the signing secret at `timestamp`. */
export function signedInteraction(secret: string, payload: unknown, timestamp = Math.floor(Date.now() / 1000)) {
  const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  return {
    body,
    headers: {
      "Content-Type": "application/x-www-form-urlencoded",
      "X-Slack-Request-Timestamp": String(timestamp),
      "X-Slack-Signature": `v0=${hmacSha256Hex(secret, `v0:${timestamp}:${body}`)}`,
    },
  };
}
