import { expect, test } from "bun:test";
import { groupOf, summariseProfile } from "../../bench/profile";

const root = "/srv/arbiter";
const frame = (functionName: string, url = "", lineNumber = 0) => ({ functionName, url, lineNumber });

test("profile summary: native time is charged to its JavaScript caller's group, idle is left out", () => {
  const profile = {
    nodes: [
      { id: 1, callFrame: frame("(root)"), children: [2, 5, 6] },
      { id: 2, callFrame: frame("authenticate", `file://${root}/src/auth/middleware.ts`, 41), children: [3, 4] },
      { id: 3, callFrame: frame("set"), children: [] },
      { id: 4, callFrame: frame("dispatch", `${root}/node_modules/hono/dist/compose.js`, 23), children: [] },
      { id: 5, callFrame: frame("(idle)"), children: [] },
      { id: 6, callFrame: frame("(garbage collector)"), children: [] },
    ],
    samples: [2, 3, 3, 4, 5, 5, 5, 6],
    timeDeltas: [1000, 1000, 1000, 2000, 5000, 5000, 5000, 500],
  };
  const summary = summariseProfile(profile, root);
  expect(summary.busyMs).toBe(5.5);
  expect(summary.groups).toEqual([
    { group: "src/auth", ms: 3 },
    { group: "hono", ms: 2 },
    { group: "(garbage collector)", ms: 0.5 },
  ]);
  expect(summary.functions[0]).toEqual({ name: "set", location: "native, called from src/auth/middleware.ts:42", ms: 2 });
  expect(summary.functions.map((f) => f.name)).not.toContain("(idle)");
});

test("profile groups: scoped packages, source areas, runtime modules", () => {
  expect(groupOf(`${root}/node_modules/@opentelemetry/sdk-metrics/dist/x.mjs`, "f", root)).toBe("@opentelemetry/sdk-metrics");
  expect(groupOf(`${root}/src/decisions/service.ts`, "f", root)).toBe("src/decisions");
  expect(groupOf(`${root}/src/server.ts`, "f", root)).toBe("src/server.ts");
  expect(groupOf("node:net", "f", root)).toBe("runtime: node:net");
  expect(groupOf("", "(program)", root)).toBe("(program)");
});
