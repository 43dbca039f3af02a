/**
 * Readiness in the format of the IETF draft "Health Check Response Format for HTTP APIs"
 * (application/health+json). Each dependency check is bounded by a timeout, so a hung database or
 * cache makes the check fail quickly instead of hanging the probe.
 */
export type HealthStatus = "pass" | "warn" | "fail";

export interface CheckResult {
  componentType: "datastore";
  observedValue: number;
  observedUnit: "ms";
  status: HealthStatus;
  time: string;
  output?: string;
}

export interface HealthReport {
  status: HealthStatus;
  version: string;
  releaseId: string;
  serviceId: string;
  description: string;
  checks: Record<string, CheckResult[]>;
}

export async function timedCheck(
  probe: () => Promise<unknown>,
  options: { timeoutMs: number; failStatus: HealthStatus; now: () => Date },
): Promise<CheckResult> {
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
  });
  try {
    await Promise.race([probe(), timeout]);
    return {
      componentType: "datastore",
      observedValue: elapsed(started),
      observedUnit: "ms",
      status: "pass",
      time: options.now().toISOString(),
    };
  } catch (error) {
    return {
      componentType: "datastore",
      observedValue: elapsed(started),
      observedUnit: "ms",
      status: options.failStatus,
      time: options.now().toISOString(),
      // The message names the failure class, never connection strings or credentials.
      output: (error as Error).message.replace(/\w+:\/\/\S+/g, "<url>"),
    };
  } finally {
    clearTimeout(timer);
  }
}

const elapsed = (started: number) => Math.round((performance.now() - started) * 100) / 100;

/** The worst status wins: one failing required check fails the whole service. */
export function overallStatus(statuses: HealthStatus[]): HealthStatus {
  if (statuses.includes("fail")) return "fail";
  if (statuses.includes("warn")) return "warn";
  return "pass";
}
