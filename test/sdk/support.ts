import type { Role } from "../../src/db/schema";
import { ArbiterClient, type ClientOptions } from "../../src/sdk";
import type { TestApp } from "../helpers/app";

/** An SDK client of the test app, authenticated with that role's key. */
export const clientAs = (t: TestApp, role: Role, options: Partial<ClientOptions> = {}) =>
  new ArbiterClient({ baseUrl: t.url, apiKey: t.keys[role], ...options });

/** The rejection of a promise (fails the test when it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to fail, but it succeeded");
}
