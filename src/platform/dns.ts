/**
 * Host name → addresses, for the webhook SSRF guard, which must check every address a callback host
 * resolves to. The Web platform has no DNS API, so this adapter uses `node:dns`, which Bun, Deno and
 * Node all provide. It is imported on first use, not at load: on a fetch-only edge platform without
 * it the app still starts, and a callback URL naming a host is refused as unresolvable (an IP
 * literal needs no lookup).
 */
export async function resolveHost(host: string): Promise<string[]> {
  const { lookup } = await import("node:dns/promises");
  return (await lookup(host, { all: true, verbatim: true })).map((entry) => entry.address);
}
