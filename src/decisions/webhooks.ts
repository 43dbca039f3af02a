import { and, asc, eq, lte, sql } from "drizzle-orm";
import type { Config } from "../config";
import { SIGNATURE_HEADER, signWebhook } from "../crypto/webhook-signature";
import { uuidv7 } from "../db/ids";
import { type DecisionRow, decisions, webhookDeliveries } from "../db/schema";
import { ApiError } from "../http/errors";
import { resolveHost } from "../platform/dns";
import { postToAddress } from "../platform/pinned-http";
import { presentDecision } from "./present";
import type { DecisionDeps } from "./service";

/**
 * Signed webhooks for a decision's final outcome.
 *
 * Each attempt POSTs JSON with `Arbiter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, where the
 * HMAC key is WEBHOOK_SIGNING_SECRET and the signed string is `${t}.${body}`; `Arbiter-Delivery` is
 * the attempt's id and `Arbiter-Event` the outcome (`decision.approved`, …). A receiver recomputes
 * the HMAC over the raw body, compares in constant time and refuses stale timestamps (replays).
 *
 * Deliveries are rows in webhook_deliveries, one per attempt: the first is written in the
 * transaction that settles the decision, so an outcome is never lost; a failed attempt schedules the
 * next with exponential backoff until WEBHOOK_MAX_ATTEMPTS.
 */

// ── SSRF guard ──────────────────────────────────────────────────────────────────────────────────
type AddressClass = "public" | "loopback" | "private" | "forbidden";

function ipv4Class(address: string): AddressClass {
  const [a = 0, b = 0] = address.split(".").map(Number);
  if (a === 127) return "loopback";
  if (a === 0 || a >= 224) return "forbidden"; // "this network", multicast, reserved, broadcast
  if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)) return "private";
  if (a === 169 && b === 254) return "private"; // link-local, cloud metadata endpoints
  if (a === 100 && b >= 64 && b <= 127) return "private"; // carrier-grade NAT
  if ((a === 192 && b === 0) || (a === 198 && (b === 18 || b === 19))) return "private"; // IETF, benchmarking
  return "public";
}

/** IPv6 → its eight 16-bit groups. */
function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase().split("%")[0]!;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1]!.split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, -v4[1]!.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const parse = (part: string) => (part ? part.split(":").map((g) => Number.parseInt(g, 16)) : []);
  const front = parse(head);
  const back = tail === undefined ? [] : parse(tail);
  return [...front, ...new Array(8 - front.length - back.length).fill(0), ...back];
}

function ipv6Class(address: string): AddressClass {
  const g = ipv6Groups(address);
  const embeddedV4 = `${g[6]! >> 8}.${g[6]! & 0xff}.${g[7]! >> 8}.${g[7]! & 0xff}`;
  const zeroPrefix = g.slice(0, 5).every((x) => x === 0);
  if (zeroPrefix && g[5] === 0xffff) return ipv4Class(embeddedV4); // IPv4-mapped
  if (g[0] === 0x64 && g[1] === 0xff9b) return ipv4Class(embeddedV4); // NAT64
  if (g.every((x, i) => x === (i === 7 ? 1 : 0))) return "loopback";
  if (g.every((x) => x === 0)) return "forbidden";
  if ((g[0]! & 0xfe00) === 0xfc00 || (g[0]! & 0xffc0) === 0xfe80) return "private"; // unique-local, link-local
  if ((g[0]! & 0xff00) === 0xff00) return "forbidden"; // multicast
  return "public";
}

/** 4 or 6 for an IP literal as the URL parser and resolvers write it, 0 for a host name. */
function ipVersion(host: string): 0 | 4 | 6 {
  if (host.includes(":")) return 6;
  return /^\d{1,3}(?:\.\d{1,3}){3}$/.test(host) ? 4 : 0;
}

export const classifyAddress = (address: string): AddressClass => (ipVersion(address) === 6 ? ipv6Class(address) : ipv4Class(address));

/** A callback URL checked for calling now: the address to connect to, or why it may not be called. */
export type CheckedCallback = { url: URL; address: string; refusal?: undefined } | { refusal: string };

/**
 * Resolves the callback's host once and checks every address. A caller that connects must connect
 * to `address` (one of those checked), never resolve the name again: a second answer may differ.
 */
export async function checkCallback(
  raw: string,
  config: Pick<Config, "WEBHOOK_ALLOW_HTTP_LOOPBACK" | "WEBHOOK_ALLOW_PRIVATE_NETWORKS">,
  resolve: (host: string) => Promise<string[]> = resolveHost,
): Promise<CheckedCallback> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { refusal: "not a valid absolute URL" };
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return { refusal: "only https URLs are allowed" };
  if (url.username || url.password) return { refusal: "credentials in the URL are not allowed" };
  const host = url.hostname.replace(/^\[|\]$/g, "");
  let addresses: string[];
  if (ipVersion(host)) addresses = [host];
  else {
    try {
      addresses = await resolve(host);
    } catch {
      return { refusal: `host ${host} does not resolve` };
    }
  }
  if (addresses.length === 0) return { refusal: `host ${host} does not resolve` };
  const classes = addresses.map(classifyAddress);
  if (url.protocol === "http:") {
    if (!config.WEBHOOK_ALLOW_HTTP_LOOPBACK) return { refusal: "only https URLs are allowed" };
    if (classes.some((c) => c !== "loopback")) return { refusal: "plain http is allowed only to loopback addresses" };
    return { url, address: addresses[0]! };
  }
  for (const [index, kind] of classes.entries()) {
    if (kind === "forbidden") return { refusal: `address ${addresses[index]} is not routable` };
    if (kind === "loopback" && !config.WEBHOOK_ALLOW_HTTP_LOOPBACK && !config.WEBHOOK_ALLOW_PRIVATE_NETWORKS) {
      return { refusal: `address ${addresses[index]} is loopback` };
    }
    if (kind === "private" && !config.WEBHOOK_ALLOW_PRIVATE_NETWORKS)
      return { refusal: `address ${addresses[index]} is private or link-local` };
  }
  return { url, address: addresses[0]! };
}

/** Why a callback URL may not be called now (its host resolved and every address checked), or undefined. */
export async function callbackRefusal(
  raw: string,
  config: Pick<Config, "WEBHOOK_ALLOW_HTTP_LOOPBACK" | "WEBHOOK_ALLOW_PRIVATE_NETWORKS">,
): Promise<string | undefined> {
  return (await checkCallback(raw, config)).refusal;
}

/** At create: a decision may name a callback only when signing is configured and the target is allowed. */
export async function assertCallbackAllowed(url: string, config: Config): Promise<void> {
  if (!config.WEBHOOK_SIGNING_SECRET) {
    throw new ApiError(422, "webhooks_not_configured", "this server has no WEBHOOK_SIGNING_SECRET, so it cannot send signed callbacks");
  }
  const reason = await callbackRefusal(url, config);
  if (reason) throw new ApiError(422, "callback_url_refused", `callback_url refused: ${reason}`);
}

// ── Delivery ────────────────────────────────────────────────────────────────────────────────────
const MAX_BACKOFF_MS = 3_600_000;
/** how long a claimed attempt stays invisible to other workers before it counts as abandoned */
const leaseMs = (config: Config) => config.WEBHOOK_TIMEOUT_MS + 30_000;

/** base · 2^(attempt−1), capped at an hour, ±20 % jitter so failing receivers are not hit in lockstep */
export function backoffMs(attempt: number, baseMs: number, random = Math.random()): number {
  const delay = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** (attempt - 1));
  return Math.round(delay * (0.8 + 0.4 * random));
}

/** A receiver's answer is read up to this many bytes and then the connection is closed. */
export const WEBHOOK_RESPONSE_MAX_BYTES = 64 * 1024;

/** How deliveries reach receivers: the platform's resolver and trust store unless a caller says otherwise. */
export interface WebhookTransport {
  resolve: (host: string) => Promise<string[]>;
  /** extra trusted certificate authorities (PEM) for https receivers */
  ca?: string;
}

const systemTransport: WebhookTransport = { resolve: resolveHost };

interface Outcome {
  statusCode: number | null;
  error: string | null;
  delivered: boolean;
  /** a refusal by the SSRF guard is not retried */
  permanent: boolean;
}

/** A 3xx is a failure like any other: following it could lead to an address the guard never saw. */
const statusError = (status: number) => (status >= 300 && status < 400 ? `HTTP ${status} (redirects are not followed)` : `HTTP ${status}`);

async function send(
  deps: DecisionDeps,
  transport: WebhookTransport,
  deliveryId: string,
  decision: DecisionRow,
  attempt: number,
  url: string,
): Promise<Outcome> {
  const { config } = deps;
  const target = await checkCallback(url, config, transport.resolve);
  if (target.refusal !== undefined) return { statusCode: null, error: `refused: ${target.refusal}`, delivered: false, permanent: true };
  const body = JSON.stringify({
    type: `decision.${decision.status}`,
    delivery_id: deliveryId,
    attempt,
    decision: presentDecision(decision),
  });
  const timestamp = Math.floor(deps.clock.now().getTime() / 1000);
  try {
    const response = await postToAddress({
      url: target.url,
      address: target.address,
      body,
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      maxResponseBytes: WEBHOOK_RESPONSE_MAX_BYTES,
      ...(transport.ca ? { ca: transport.ca } : {}),
      headers: {
        "Content-Type": "application/json",
        "User-Agent": "Arbiter-Webhooks/1",
        [SIGNATURE_HEADER]: signWebhook(config.WEBHOOK_SIGNING_SECRET ?? "", timestamp, body),
        "Arbiter-Delivery": deliveryId,
        "Arbiter-Event": `decision.${decision.status}`,
      },
    });
    const delivered = response.status >= 200 && response.status < 300;
    return { statusCode: response.status, error: delivered ? null : statusError(response.status), delivered, permanent: false };
  } catch (error) {
    return { statusCode: null, error: (error as Error).message.slice(0, 500), delivered: false, permanent: false };
  }
}

/**
 * One pass of the delivery worker: claims due attempts (FOR UPDATE SKIP LOCKED, so replicas share the
 * work), sends them, records each result and schedules the next attempt of a failure.
 */
export async function deliverDueWebhooks(deps: DecisionDeps, limit = 20, transport: WebhookTransport = systemTransport): Promise<number> {
  const { db } = deps.database;
  const now = deps.clock.now();
  if (!deps.config.WEBHOOK_SIGNING_SECRET) return 0;
  const claimed = await db.transaction(async (tx) => {
    const due = await tx
      .select({ delivery: webhookDeliveries, decision: decisions })
      .from(webhookDeliveries)
      .innerJoin(decisions, eq(decisions.id, webhookDeliveries.decisionId))
      .where(and(lte(webhookDeliveries.nextAttemptAt, now), eq(webhookDeliveries.delivered, false)))
      .orderBy(asc(webhookDeliveries.nextAttemptAt))
      .limit(limit)
      .for("update", { of: webhookDeliveries, skipLocked: true });
    for (const { delivery } of due) {
      await tx
        .update(webhookDeliveries)
        .set({ nextAttemptAt: new Date(now.getTime() + leaseMs(deps.config)) })
        .where(eq(webhookDeliveries.id, delivery.id));
    }
    return due;
  });
  await Promise.all(
    claimed.map(async ({ delivery, decision }) => {
      const outcome = await send(deps, transport, delivery.id, decision, delivery.attempt, delivery.url);
      const retry = !outcome.delivered && !outcome.permanent && delivery.attempt < deps.config.WEBHOOK_MAX_ATTEMPTS;
      const finished = deps.clock.now();
      await db.transaction(async (tx) => {
        await tx
          .update(webhookDeliveries)
          .set({ statusCode: outcome.statusCode, error: outcome.error, delivered: outcome.delivered, nextAttemptAt: null })
          .where(eq(webhookDeliveries.id, delivery.id));
        if (retry) {
          await tx.insert(webhookDeliveries).values({
            id: uuidv7(finished.getTime()),
            decisionId: delivery.decisionId,
            url: delivery.url,
            attempt: delivery.attempt + 1,
            nextAttemptAt: new Date(finished.getTime() + backoffMs(delivery.attempt, deps.config.WEBHOOK_BACKOFF_BASE_MS)),
          });
        }
      });
      if (!outcome.delivered) {
        deps.logger.warn("webhook attempt failed", {
          decision_id: delivery.decisionId,
          attempt: delivery.attempt,
          error: outcome.error,
          will_retry: retry,
        });
      }
    }),
  );
  return claimed.length;
}

/** Every attempt for a decision, oldest first (operators and tests read the delivery history). */
export function deliveryAttempts(deps: Pick<DecisionDeps, "database">, decisionId: string) {
  return deps.database.db
    .select()
    .from(webhookDeliveries)
    .where(eq(webhookDeliveries.decisionId, decisionId))
    .orderBy(asc(webhookDeliveries.attempt), sql`${webhookDeliveries.createdAt}`);
}
