import { expect, setDefaultTimeout, test } from "bun:test";
import type { ApiError } from "../../src/http/errors";
import { parseCheckedJson } from "../../src/http/input-guard";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/** What parseCheckedJson answers for a text: the value, or the error's code and details. */
function outcome(text: string) {
  try {
    return { value: parseCheckedJson(text, "request body", "json") };
  } catch (error) {
    const { code, message, details } = error as ApiError;
    return { code, message, details };
  }
}
const unstorable = (path: string) => ({
  code: "validation_failed",
  message: "request validation failed",
  details: [{ path, message: "NUL characters and unpaired UTF-16 surrogates are not accepted", code: "invalid_string" }],
});
const deep = (levels: number, inner = "1") => `${"[".repeat(levels)}${inner}${"]".repeat(levels)}`;

test("input guard: the first value that cannot be stored is named, in document order", () => {
  // a key is checked before its value, an earlier key's value before a later key
  expect(outcome('{"a": {"b\\u0000": "x\\u0000"}, "c": "\\u0000"}')).toEqual(unstorable("json.a.b\ufffd"));
  expect(outcome('{"a": [1, {"b": ["ok", "\\ud800"]}], "c\\u0000": 1}')).toEqual(unstorable("json.a.1.b.1"));
  expect(outcome('["\\u0000"]')).toEqual(unstorable("json.0"));
  expect(outcome('"\\u0000"')).toEqual(unstorable("json"));
  expect(outcome('{"n": [0, 1e999]}')).toEqual({
    code: "validation_failed",
    message: "request validation failed",
    details: [{ path: "json.n.1", message: "number is out of range (beyond ±1.7976931348623157e308)", code: "too_big" }],
  });
  expect(outcome('{"x": {"__proto__": {}}}')).toEqual({
    code: "validation_failed",
    message: "request validation failed",
    details: [{ path: "json.x.__proto__", message: "the key __proto__ is not accepted", code: "invalid_key" }],
  });
  expect(outcome('{"a": [1, {"b": "ok"}], "c": null}')).toEqual({ value: { a: [1, { b: "ok" }], c: null } });
});

test("input guard: nesting deeper than 64 levels is refused before anything else, even where a later key hides it", () => {
  expect(outcome(deep(64))).toEqual({ value: JSON.parse(deep(64)) });
  const tooDeep = { code: "json_too_deep", message: "request body nests deeper than 64 levels", details: undefined };
  expect(outcome(deep(65))).toEqual(tooDeep);
  expect(outcome(`["\\u0000", ${deep(64)}]`)).toEqual(tooDeep);
  // JSON.parse keeps only the last of two equal keys: the text, not the value, is what is measured
  expect(outcome(`{"a": ${deep(64)}, "a": 1}`)).toEqual(tooDeep);
  expect(outcome(deep(65).slice(0, -1))).toEqual(tooDeep);
  expect(outcome(deep(3).slice(0, -1))).toEqual({ code: "malformed_json", message: "request body is not valid JSON", details: undefined });
});
