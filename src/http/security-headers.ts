import type { RequestHook } from "./request-hooks";

/**
 * The headers Hono's `secureHeaders()` sends by default (test/foundation/security-headers.test.ts
 * compares them with it), with HSTS for two years including subdomains. Set on every answer, over
 * any a route set itself, as that middleware does; a list set in one pass rather than a middleware
 * of its own (see RequestHook).
 */
export const SECURITY_HEADERS: readonly (readonly [string, string])[] = [
  ["Cross-Origin-Resource-Policy", "same-origin"],
  ["Cross-Origin-Opener-Policy", "same-origin"],
  ["Origin-Agent-Cluster", "?1"],
  ["Referrer-Policy", "no-referrer"],
  ["Strict-Transport-Security", "max-age=63072000; includeSubDomains"],
  ["X-Content-Type-Options", "nosniff"],
  ["X-DNS-Prefetch-Control", "off"],
  ["X-Download-Options", "noopen"],
  ["X-Frame-Options", "SAMEORIGIN"],
  ["X-Permitted-Cross-Domain-Policies", "none"],
  ["X-XSS-Protection", "0"],
];

export function securityHeaders(): RequestHook<void> {
  return {
    before() {},
    after(c) {
      if (!c.finalized) return;
      const headers = c.res.headers;
      for (const [name, value] of SECURITY_HEADERS) headers.set(name, value);
    },
  };
}
