import type { Transport } from "./transport";
import type { SnapshotRequest, TelemetryBatchResult, TelemetryEventRequest, TelemetrySnapshot } from "./types";

/** the server's largest batch */
export const MAX_BATCH = 1_000;

export class TelemetryApi {
  constructor(private readonly http: Transport) {}

  /**
   * Sends any number of events in batches of at most 1,000 and adds up the answers. An event without
   * an `id` gets a random UUID first: the server stores each id once, so a batch retried after a 429
   * or 503 (or sent again by the caller with the same ids) is never counted twice.
   */
  async sendEvents(events: readonly TelemetryEventRequest[], options: { signal?: AbortSignal } = {}): Promise<TelemetryBatchResult> {
    const total: TelemetryBatchResult = { received: 0, accepted: 0, duplicates: 0 };
    for (let start = 0; start < events.length; start += MAX_BATCH) {
      const batch = events.slice(start, start + MAX_BATCH).map((event) => ({ ...event, id: event.id ?? crypto.randomUUID() }));
      const result = await this.http.send<TelemetryBatchResult>("POST", "/v1/telemetry/events", {
        body: { events: batch },
        idempotent: true,
        signal: options.signal,
      });
      total.received += result.received;
      total.accepted += result.accepted;
      total.duplicates += result.duplicates;
    }
    return total;
  }

  /** Records a snapshot of a source's metrics; it becomes the source's latest. */
  snapshot(request: SnapshotRequest): Promise<TelemetrySnapshot> {
    return this.http.send("POST", "/v1/telemetry/snapshots", { body: request });
  }

  /** The source's latest snapshot (404 `not_found` when it has none). */
  latest(source: string): Promise<TelemetrySnapshot> {
    return this.http.send("GET", "/v1/telemetry/snapshots/latest", { query: { source } });
  }
}
