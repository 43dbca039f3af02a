import { createMemoryCache } from "../../src/cache/memory";
import { createRedisCache } from "../../src/cache/redis";
import type { Cache } from "../../src/cache/types";

/** The tier's cache: real Redis under a unique prefix when REDIS_URL is set, else in-memory. */
export function openTestCache(): Cache {
  const url = process.env.REDIS_URL;
  if (!url) return createMemoryCache();
  return createRedisCache({ url, prefix: uniquePrefix() });
}

export const uniquePrefix = () => `arbiter-test:${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}:`;
