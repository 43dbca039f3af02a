import type { Transport } from "./transport";
import type { CreatePolicyRequest, Policy, PolicyReplay, PreviewRequest, ReplayRequest, UpdatePolicyRequest } from "./types";

const path = (id: string, rest = "") => `/v1/policies/${encodeURIComponent(id)}${rest}`;
const iso = (value: string | Date | undefined) => (value instanceof Date ? value.toISOString() : value);
const range = (request: ReplayRequest) => ({ ...request, from: iso(request.from), to: iso(request.to) });

/** Policy rules (admin only, `policies:manage`): CEL conditions that approve, deny or demand people. */
export class PoliciesApi {
  constructor(private readonly http: Transport) {}

  /** Saves a rule as version 1 (state `shadow` unless given); an invalid expression is a 400 naming its position. */
  create(request: CreatePolicyRequest): Promise<Policy> {
    return this.http.send("POST", "/v1/policies", { body: request });
  }

  /** Every policy's current version, in evaluation order. */
  async list(): Promise<Policy[]> {
    return (await this.http.send<{ data: Policy[] }>("GET", "/v1/policies")).data;
  }

  get(id: string): Promise<Policy> {
    return this.http.send("GET", path(id));
  }

  /** Saves a new version; `expected_version` makes it a compare-and-set (409 when another change came first). */
  update(id: string, request: UpdatePolicyRequest): Promise<Policy> {
    return this.http.send("PATCH", path(id), { body: request });
  }

  /** A new version in state `disabled`: no longer evaluated. */
  disable(id: string): Promise<Policy> {
    return this.http.send("POST", path(id, "/disable"));
  }

  /** The policy is never evaluated again; its versions stay readable. */
  delete(id: string): Promise<void> {
    return this.http.send("DELETE", path(id));
  }

  /** Every version, newest first. */
  async versions(id: string): Promise<Policy[]> {
    return (await this.http.send<{ data: Policy[] }>("GET", path(id, "/versions"))).data;
  }

  version(id: string, version: number): Promise<Policy> {
    return this.http.send("GET", path(id, `/versions/${version}`));
  }

  /** What a saved rule would have done over past decisions in a time range. */
  replay(id: string, request: ReplayRequest): Promise<PolicyReplay> {
    return this.http.send("POST", path(id, "/replay"), { body: range(request), idempotent: true });
  }

  /** The same for an unsaved rule. */
  preview(request: PreviewRequest): Promise<PolicyReplay> {
    return this.http.send("POST", "/v1/policies/preview", { body: range(request), idempotent: true });
  }
}
