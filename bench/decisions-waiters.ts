/**
 * Client half of bench/decisions.ts: opens WAITERS long-poll requests for one decision and, when each
 * answers, records the wall-clock time it arrived. Runs as its own process (with Bun's concurrent
 * request limit raised), so the server process's memory holds only server-side state.
 * Prints one JSON line: { answered_at: number[], statuses: Record<string, number> }.
 */
const [baseUrl, decisionId, apiKey, count] = process.argv.slice(2) as [string, string, string, string];
const waiters = Number(count);
const epochMs = () => performance.timeOrigin + performance.now();

const statuses: Record<string, number> = {};
const answeredAt: number[] = [];
const requests = Array.from({ length: waiters }, async () => {
  const res = await fetch(`${baseUrl}/v1/decisions/${decisionId}?wait=55`, { headers: { "X-API-Key": apiKey } });
  const body = (await res.json()) as { status?: string };
  answeredAt.push(epochMs());
  const key = `${res.status}:${body.status ?? "error"}`;
  statuses[key] = (statuses[key] ?? 0) + 1;
});
await Promise.all(requests);
console.log(JSON.stringify({ answered_at: answeredAt, statuses }));

export {}; // a module, for top-level await
