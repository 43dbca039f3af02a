import type { z } from "@hono/zod-openapi";

/**
 * `schema`, with a shortcut for the input it is given on nearly every request: when `accept` returns
 * a value, that is the parsed input and zod does not run; when it returns undefined (anything
 * unusual, and so every invalid input), zod parses as usual, so each error is zod's own. `accept`
 * must recognise only input the schema takes, and return exactly what the schema would make of it.
 * The schema's shape (and so the OpenAPI document) is unchanged: only its async parse is replaced.
 */
export function withFastPath<S extends z.ZodType>(schema: S, accept: (value: unknown) => z.output<S> | undefined): S {
  const fast = Object.create(schema) as S;
  fast.safeParseAsync = (value, params) => {
    const data = accept(value);
    return data === undefined ? schema.safeParseAsync(value, params) : Promise.resolve({ success: true as const, data });
  };
  return fast;
}

/** Own enumerable keys of a plain object: the validators hand over `{}`-literal objects of strings. */
export function keyCount(value: object): number {
  let count = 0;
  for (const _ in value) count++;
  return count;
}

/** A canonical lowercase UUID with a valid version (1-8) and variant: a subset of what z.uuid() accepts. */
export const PLAIN_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
