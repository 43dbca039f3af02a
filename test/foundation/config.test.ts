import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { ConfigError, loadConfig } from "../../src/config";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

describe("configuration: settings that contradict each other", () => {
  test("a default decision window longer than the longest allowed stops the start, naming the variable", () => {
    const load = () => loadConfig({ DECISION_DEFAULT_TTL_SECONDS: "7200", DECISION_MAX_TTL_SECONDS: "3600" });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow("DECISION_DEFAULT_TTL_SECONDS: must not exceed DECISION_MAX_TTL_SECONDS");
  });

  test("a default decision window equal to the longest allowed is accepted", () => {
    const config = loadConfig({ DECISION_DEFAULT_TTL_SECONDS: "3600", DECISION_MAX_TTL_SECONDS: "3600" });
    expect(config.DECISION_DEFAULT_TTL_SECONDS).toBe(3600);
    expect(config.DECISION_MAX_TTL_SECONDS).toBe(3600);
  });
});
