import { type Attributes, ValueType } from "@opentelemetry/api";
import { AggregationTemporality, DataPointType, type MetricData } from "@opentelemetry/sdk-metrics";
import { matchedRoute } from "../http/middleware";
import type { RequestHook } from "../http/request-hooks";
import { HTTP_DURATION_BUCKETS, type MetricsRegistry } from "./metrics";

// Any other method is reported as _OTHER (OpenTelemetry HTTP semantic conventions), bounding cardinality.
const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"]);

/** One series: a method, a route template (or none) and a status class. */
interface Series {
  readonly attributes: Attributes;
  /** per bucket of HTTP_DURATION_BUCKETS, and one past the last boundary */
  readonly counts: number[];
  sum: number;
  count: number;
}

/**
 * HTTP server metrics under the OpenTelemetry semantic-convention names. Labels are the method, the
 * route *template* (absent when no route matched, so a scan of random paths cannot blow up
 * cardinality or leak ids) and the status class.
 *
 * Counted in plain per-series numbers and handed to the exporter at each scrape, as cumulative
 * OpenTelemetry data of the same names, units, labels and buckets as the instruments they replace:
 * an instrument hashes (sorts and serialises) its attributes on every call, three times per request
 * here, which cost more than authenticating the request.
 */
export function httpMetrics(
  registry: MetricsRegistry,
  now: () => number = () => performance.now(),
): RequestHook<{ method: string; inFlight: { value: number }; started: number }> {
  // route → method → status class (1..5) → series; the route is "" when none matched.
  const series = new Map<string, Map<string, Series[]>>();
  const active = new Map<string, { value: number }>();
  const startedAt = Date.now();

  const seriesOf = (method: string, route: string | undefined, status: number): Series => {
    let byMethod = series.get(route ?? "");
    if (!byMethod) series.set(route ?? "", (byMethod = new Map()));
    let byClass = byMethod.get(method);
    if (!byClass) byMethod.set(method, (byClass = []));
    const statusClass = Math.floor(status / 100);
    let found = byClass[statusClass];
    if (!found) {
      const attributes: Attributes = { "http.request.method": method, "http.response.status_class": `${statusClass}xx` };
      if (route) attributes["http.route"] = route;
      byClass[statusClass] = found = { attributes, counts: new Array(HTTP_DURATION_BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
    }
    return found;
  };

  registry.addSource(() => {
    const startTime = hrTime(startedAt);
    const endTime = hrTime(Date.now());
    const point = <T>(attributes: Attributes, value: T) => ({ attributes, startTime, endTime, value });
    const sum = (name: string, description: string, isMonotonic: boolean, dataPoints: ReturnType<typeof point<number>>[]): MetricData => ({
      descriptor: { name, description, unit: "", valueType: ValueType.DOUBLE },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.SUM,
      isMonotonic,
      dataPoints,
    });
    const all = [...series.values()].flatMap((byMethod) => [...byMethod.values()].flatMap((byClass) => byClass.filter(Boolean)));
    const metrics: MetricData[] = [
      {
        descriptor: {
          name: "http.server.request.duration",
          description: "Duration of HTTP server requests",
          unit: "s",
          valueType: ValueType.DOUBLE,
        },
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.HISTOGRAM,
        dataPoints: all.map((s) =>
          point(s.attributes, { buckets: { boundaries: HTTP_DURATION_BUCKETS, counts: [...s.counts] }, sum: s.sum, count: s.count }),
        ),
      },
      sum(
        "http.server.active_requests",
        "HTTP server requests in flight",
        false,
        [...active].map(([method, { value }]) => point({ "http.request.method": method }, value)),
      ),
      sum(
        "http.server.requests",
        "HTTP server requests answered",
        true,
        all.map((s) => point(s.attributes, s.count)),
      ),
      sum(
        "http.server.errors",
        "HTTP server requests answered with a 5xx status",
        true,
        all.filter((s) => s.attributes["http.response.status_class"] === "5xx").map((s) => point(s.attributes, s.count)),
      ),
    ];
    // As from an instrument: a metric with no series yet is left out of the exposition.
    return metrics.filter((metric) => metric.dataPoints.length > 0);
  });

  return {
    before(c) {
      const method = KNOWN_METHODS.has(c.req.method) ? c.req.method : "_OTHER";
      let inFlight = active.get(method);
      if (!inFlight) active.set(method, (inFlight = { value: 0 }));
      inFlight.value++;
      return { method, inFlight, started: now() };
    },
    after(c, { method, inFlight, started }) {
      inFlight.value--;
      // A handler that threw past every error handler is answered 500 by the server.
      const status = c.finalized ? c.res.status : 500;
      const s = seriesOf(method, matchedRoute(c), status);
      const seconds = (now() - started) / 1000;
      s.count++;
      s.sum += seconds;
      s.counts[bucketOf(seconds)]!++;
    },
  };
}

/** The bucket a duration falls in: the first boundary at or above it (a boundary is an inclusive upper bound, `le`). */
function bucketOf(seconds: number): number {
  let i = 0;
  while (i < HTTP_DURATION_BUCKETS.length && HTTP_DURATION_BUCKETS[i]! < seconds) i++;
  return i;
}

const hrTime = (ms: number): [number, number] => [Math.floor(ms / 1000), (ms % 1000) * 1e6];
