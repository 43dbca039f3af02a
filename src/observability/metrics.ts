import type { Attributes, Meter } from "@opentelemetry/api";
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { MeterProvider, type MetricData, type ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { memoryUsage, runtimeInfo } from "../platform/runtime";

/**
 * Arbiter's own metrics: one OpenTelemetry MeterProvider per app instance (never registered
 * globally, so a test process can run several apps side by side), read by the Prometheus exporter
 * with its HTTP server disabled; Arbiter serves the exposition itself at GET /metrics.
 *
 * Instruments keep their OpenTelemetry names and units; the exposition follows the OpenTelemetry →
 * Prometheus compatibility rules. The exporter replaces dots with underscores and appends `_total`
 * to monotonic counters, but does not put the unit in the name, so `render` does that first (see
 * `withUnitSuffixes`). So `http.server.request.duration` (unit s) is scraped as
 * `http_server_request_duration_seconds_bucket|_sum|_count`, and `arbiter.decisions.created` as
 * `arbiter_decisions_created_total`.
 */
export interface MetricsRegistry {
  /** the meter every module instruments with */
  readonly meter: Meter;
  /**
   * Adds metrics kept outside the meter, read at each scrape and exported like the meter's own (same
   * naming rules). For per-request figures, where an instrument's per-call attribute hashing costs
   * more than the request's own work: see http-metrics.ts.
   */
  addSource(source: () => MetricData[]): void;
  /** the current values in the Prometheus text exposition format */
  render(): Promise<string>;
  shutdown(): Promise<void>;
}

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Request-latency buckets in seconds, from a cache hit to a long database stall. */
export const HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60];
/** Query-latency buckets in seconds: most statements finish in well under a millisecond. */
export const DB_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface MetricsOptions {
  version: string;
  /** the build's release id, shown on the build-info series */
  releaseId?: string;
  /** process start, for the uptime gauge */
  startedAt?: number;
}

export function createMetricsRegistry(options: MetricsOptions): MetricsRegistry {
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true, withoutTargetInfo: true });
  const serializer = new PrometheusSerializer(undefined, false, undefined, true, true);
  const provider = new MeterProvider({ readers: [exporter] });
  const meter = provider.getMeter("arbiter", options.version);
  registerProcessMetrics(meter, options);
  const sources: (() => MetricData[])[] = [];
  return {
    meter,
    addSource: (source) => void sources.push(source),
    async render() {
      const { resourceMetrics } = await exporter.collect();
      const metrics = sources.flatMap((source) => source());
      const all = {
        ...resourceMetrics,
        scopeMetrics: [...resourceMetrics.scopeMetrics, { scope: { name: "arbiter", version: options.version }, metrics }],
      };
      return serializer.serialize(withUnitSuffixes(all));
    },
    shutdown: () => provider.shutdown(),
  };
}

/** OpenTelemetry (UCUM) units Arbiter records in, and the Prometheus base unit each is named by. */
const PROMETHEUS_UNITS = new Map([
  ["s", "seconds"],
  ["By", "bytes"],
]);

/**
 * The compatibility rule the exporter leaves out: a unit is written out in words, both as the
 * metric's UNIT and as a suffix of its name (before the exporter's `_total`), unless the name
 * already ends in it. Any other unit passes through unchanged, so a new one needs its entry here.
 */
function withUnitSuffixes(resourceMetrics: ResourceMetrics): ResourceMetrics {
  return {
    ...resourceMetrics,
    scopeMetrics: resourceMetrics.scopeMetrics.map((scope) => ({
      ...scope,
      metrics: scope.metrics.map((metric) => {
        const unit = PROMETHEUS_UNITS.get(metric.descriptor.unit);
        if (!unit) return metric;
        const { name } = metric.descriptor;
        const named = name.endsWith(`.${unit}`) || name.endsWith(`_${unit}`) ? name : `${name}.${unit}`;
        return { ...metric, descriptor: { ...metric.descriptor, name: named, unit } };
      }),
    })),
  };
}

function registerProcessMetrics(meter: Meter, options: MetricsOptions): void {
  const startedAt = options.startedAt ?? Date.now();
  const runtime = runtimeInfo();
  meter.createObservableGauge("arbiter.build.info", { description: "Always 1; the labels name the running build" }).addCallback((result) =>
    result.observe(1, {
      version: options.version,
      release_id: options.releaseId ?? options.version,
      runtime: runtime.name,
      runtime_version: runtime.version,
    }),
  );
  meter
    .createObservableGauge("process.uptime", { description: "Seconds since the process started", unit: "s" })
    .addCallback((result) => result.observe((Date.now() - startedAt) / 1000));
  meter
    .createObservableGauge("process.memory.usage", { description: "Process memory in bytes, by kind", unit: "By" })
    .addCallback((result) => {
      const usage = memoryUsage();
      if (!usage) return;
      result.observe(usage.rss, { "memory.type": "rss" });
      result.observe(usage.heapUsed, { "memory.type": "heap_used" });
      result.observe(usage.heapTotal, { "memory.type": "heap_total" });
      result.observe(usage.external, { "memory.type": "external" });
    });
}

/** A counter's `add`: what the cache instruments offer their callers. */
export interface CountingInstrument {
  add(value: number, attributes?: Attributes): void;
}

const cacheInstrumentsByMeter = new WeakMap<Meter, { hits: CountingInstrument; misses: CountingInstrument }>();

/**
 * Cache lookups by outcome, one pair of counters every cached read shares (labelled by what is
 * cached). A cached read is the cheapest request there is, so its count is a plain number per label
 * set, read by an observable counter of the same name at each scrape: a synchronous counter would
 * hash (sort and serialise) the labels on every hit. Callers pass a constant label object, which
 * is then looked up by identity.
 */
export function cacheInstruments(meter: Meter): { hits: CountingInstrument; misses: CountingInstrument } {
  let instruments = cacheInstrumentsByMeter.get(meter);
  if (!instruments) {
    instruments = {
      hits: plainCounter(meter, "arbiter.cache.hits", "Cache reads answered from the cache"),
      misses: plainCounter(meter, "arbiter.cache.misses", "Cache reads that went to the database (absent entry or cache unavailable)"),
    };
    cacheInstrumentsByMeter.set(meter, instruments);
  }
  return instruments;
}

function plainCounter(meter: Meter, name: string, description: string): CountingInstrument {
  /** per label set (by content), its labels and count */
  const series = new Map<string, { attributes: Attributes; value: number }>();
  /** label objects already seen → their series, so a constant label object costs one lookup */
  const byObject = new WeakMap<Attributes, { attributes: Attributes; value: number }>();
  const none: Attributes = {};
  meter.createObservableCounter(name, { description }).addCallback((result) => {
    for (const { attributes, value } of series.values()) result.observe(value, attributes);
  });
  return {
    add(value, attributes = none) {
      let entry = byObject.get(attributes);
      if (!entry) {
        const key = JSON.stringify(Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
        entry = series.get(key);
        if (!entry) series.set(key, (entry = { attributes: { ...attributes }, value: 0 }));
        byObject.set(attributes, entry);
      }
      entry.value += value;
    },
  };
}
