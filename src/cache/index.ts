import type { Config } from "../config";
import { createMemoryCache } from "./memory";
import { createRedisCache } from "./redis";
import type { Cache } from "./types";
import { createUpstashCache } from "./upstash";

export type { Cache } from "./types";
export { CacheUnavailableError } from "./types";

/** Picks the cache backend the configuration names: Redis, Upstash REST, or in-process. */
export function createCache(
  config: Pick<Config, "REDIS_URL" | "UPSTASH_REDIS_REST_URL" | "UPSTASH_REDIS_REST_TOKEN" | "CACHE_PREFIX">,
): Cache {
  if (config.REDIS_URL) return createRedisCache({ url: config.REDIS_URL, prefix: config.CACHE_PREFIX });
  if (config.UPSTASH_REDIS_REST_URL && config.UPSTASH_REDIS_REST_TOKEN) {
    return createUpstashCache({ url: config.UPSTASH_REDIS_REST_URL, token: config.UPSTASH_REDIS_REST_TOKEN, prefix: config.CACHE_PREFIX });
  }
  return createMemoryCache();
}
