import type { Clock } from "../../src/deps";
import type { TestApp } from "../helpers/app";

/** A clock tests move by hand: expiry, cache TTLs and rate-limit windows follow it without sleeping. */
export interface ManualClock extends Clock {
  advance(ms: number): void;
}

export function manualClock(start = Date.now()): ManualClock {
  let at = start;
  return {
    now: () => new Date(at),
    advance(ms) {
      at += ms;
    },
  };
}

export async function errorCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { error?: { code?: string } };
  return body.error?.code;
}

/** The value of one Prometheus series of the app's metrics, 0 when absent. */
export async function metricValue(t: TestApp, name: string, labels: Record<string, string>): Promise<number> {
  const text = await t.deps.metrics.render();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (wanted.every((label) => line.includes(label))) return Number(line.split(" ").at(-1));
  }
  return 0;
}

/** Authorization header for a bearer credential (API key or token). */
export const bearer = (credential: string) => ({ Authorization: `Bearer ${credential}` });

/** A service token for one of the test app's keys. */
export async function issueToken(t: TestApp, as: "admin" | "operator" | "service", body: unknown = {}): Promise<string> {
  const res = await t.request("/v1/auth/token", { as, method: "POST", json: body });
  if (res.status !== 200) throw new Error(`token issue failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}
