import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "./env";
import { badRequest, validationFailed } from "./errors";

/** Deepest nesting a JSON body may have: far beyond real payloads, far below any recursion limit. */
const MAX_JSON_DEPTH = 64;

const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json\s*(;|$)/i;
/** NUL (PostgreSQL text and jsonb cannot hold it) and unpaired UTF-16 surrogates (not Unicode text at all). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what this must find
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, "g");

/** Whether PostgreSQL can store the string as text: no NUL, no unpaired surrogate. */
export const isStorableText = (text: string) => !UNSTORABLE.test(text);

/**
 * Checks what a route receives before its schemas see it. Query and path values may hold no NUL
 * (a percent-encoded `%00` decodes to one, and PostgreSQL fails any statement that carries it). A
 * JSON body must be UTF-8 (invalid bytes would otherwise be replaced silently, changing what the
 * caller sent and what its hash covers), nest at most MAX_JSON_DEPTH levels (canonical JSON, size
 * checks and PostgreSQL's jsonb parser all recurse), and hold no string the database cannot store,
 * no number beyond double range and no `__proto__` key. Each is a 400 naming the problem, where it
 * would otherwise be a silent change or a 500. The body stays cached for the route's validator.
 */
export function inputGuard(): MiddlewareHandler<AppEnv> {
  // Not async: a request without a JSON body (every read) passes with no frame of its own to resume on the way out.
  return (c, next) => {
    // A URL with no percent-escape is plain ASCII as sent: it cannot decode to NUL or a surrogate.
    if (c.req.url.includes("%")) {
      const values = [
        ...Object.entries(c.req.queries()).map(([name, items]) => [`query.${name}`, [name, ...items]] as const),
        ...Object.entries(c.req.param() as Record<string, string>).map(([name, value]) => [`param.${name}`, [value]] as const),
      ];
      for (const [path, items] of values) {
        if (items.some((item) => UNSTORABLE.test(item))) throw validationFailed([unstorableString(path)]);
      }
    }
    if (JSON_MEDIA_TYPE.test(c.req.header("content-type") ?? "")) return checkJsonBody(c).then(() => next());
    return next();
  };
}

async function checkJsonBody(c: Context<AppEnv>): Promise<void> {
  const bytes = await c.req.arrayBuffer();
  if (bytes.byteLength === 0) return;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw badRequest("malformed_json", "request body is not valid UTF-8");
  }
  const value = parseCheckedJson(text, "request body", "json");
  // The route's validator reads the body with c.req.json(), which would parse the text again (a
  // 1,000-event batch is ~150 KB): it gets this parse instead.
  c.req.json = <T>() => Promise.resolve(value as T);
}

/**
 * JSON text parsed with the checks a JSON body gets (depth, syntax, storable strings and numbers, no
 * `__proto__` key); `what` names the text in messages, `path` prefixes the field paths in details.
 */
export function parseCheckedJson(text: string, what: string, path: string): unknown {
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    throw badRequest("json_too_deep", `${what} nests deeper than ${MAX_JSON_DEPTH} levels`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest("malformed_json", `${what} is not valid JSON`);
  }
  const problem = unstorableIn(value);
  if (problem) throw validationFailed([problem.detail(path)]);
  return value;
}

const unstorableString = (path: string) => ({
  path: path.replace(UNSTORABLE_ALL, "\ufffd"),
  message: "NUL characters and unpaired UTF-16 surrogates are not accepted",
  code: "invalid_string",
});

/** Counts brackets outside strings, without parsing: safe on input that would overflow a recursive parser. */
function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      // a backslash escapes the next character; a quote ends the string
      if (ch === 0x5c) i++;
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x5b || ch === 0x7b) {
      if (++depth > limit) return true;
    } else if (ch === 0x5d || ch === 0x7d) depth--;
  }
  return false;
}

/** A value that cannot be stored as sent, found at `segments` below the root (innermost first). */
interface Unstorable {
  segments: string[];
  detail(root: string): { path: string; message: string; code: string };
}

function unstorable(make: (path: string) => { path: string; message: string; code: string }, segment?: string): Unstorable {
  const segments = segment === undefined ? [] : [segment];
  return { segments, detail: (root) => make([root, ...[...segments].reverse()].join(".")) };
}
const outOfRange = (path: string) => ({ path, message: "number is out of range (beyond ±1.7976931348623157e308)", code: "too_big" });
const protoKey = (path: string) => ({ path, message: "the key __proto__ is not accepted", code: "invalid_key" });

/**
 * The first value that cannot be stored as sent: a string (value or key) holding NUL or an unpaired
 * surrogate, or a number beyond double range (JSON.parse makes 1e309 Infinity, which JSON.stringify
 * would then write as null). Undefined when there is none. Its path is built only once it is found,
 * on the way back up: a 1,000-event batch holds some 10,000 values, and none of them needs one.
 */
function unstorableIn(value: unknown): Unstorable | undefined {
  if (typeof value === "string") return UNSTORABLE.test(value) ? unstorable(unstorableString) : undefined;
  if (typeof value === "number") return Number.isFinite(value) ? undefined : unstorable(outOfRange);
  if (value === null || typeof value !== "object") return undefined;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const found = unstorableIn(value[index]);
      if (found) {
        found.segments.push(String(index));
        return found;
      }
    }
    return undefined;
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (UNSTORABLE.test(key)) return unstorable(unstorableString, key);
    // Copying a parsed object (as every schema does) turns a `__proto__` key into a prototype: the
    // field would vanish from what is stored and hashed, so the caller's data would change silently.
    if (key === "__proto__") return unstorable(protoKey, key);
    const found = unstorableIn(record[key]);
    if (found) {
      found.segments.push(key);
      return found;
    }
  }
  return undefined;
}
