/**
 * INCRBY (ARGV[2]) and the first PEXPIRE in one Lua script, so a crash between them cannot leave a counter that
 * never resets; a key found without a TTL is given one. Shared by the Redis and Upstash backends.
 */
export const INCREMENT_SCRIPT = `
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}`;
