import { items, pages } from "./pagination";
import type { Transport } from "./transport";
import type { ApiKey, CreateOperatorRequest, DisabledOperator, ListOperatorsOptions, Operator, Page, UpdateOperatorRequest } from "./types";

const path = (id: string, verb?: string) => `/v1/operators/${encodeURIComponent(id)}${verb ? `/${verb}` : ""}`;

/** People: they hold keys, and quorum counts them rather than their keys. */
export class OperatorsApi {
  constructor(private readonly http: Transport) {}

  create(request: CreateOperatorRequest): Promise<Operator> {
    return this.http.send("POST", "/v1/operators", { body: request });
  }

  get(id: string): Promise<Operator> {
    return this.http.send("GET", path(id));
  }

  list(query: ListOperatorsOptions = {}): Promise<Page<Operator>> {
    return this.http.send("GET", "/v1/operators", { query });
  }

  pages(query: ListOperatorsOptions = {}): AsyncGenerator<Page<Operator>> {
    return pages((q) => this.list(q), query);
  }

  listAll(query: ListOperatorsOptions = {}): AsyncGenerator<Operator> {
    return items((q) => this.list(q), query);
  }

  /** Changes name, role, email or Slack id; `null` clears a contact. */
  update(id: string, request: UpdateOperatorRequest): Promise<Operator> {
    // Sets absolute values, so sending it twice is harmless: retried like a GET.
    return this.http.send("PATCH", path(id), { body: request, idempotent: true });
  }

  /** Disables the person and revokes every key they hold (and those keys' tokens) at once. */
  disable(id: string): Promise<DisabledOperator> {
    return this.http.send("POST", path(id, "disable"));
  }

  /** Gives an existing active key to the person. */
  assignKey(id: string, keyId: string): Promise<ApiKey> {
    return this.http.send("POST", path(id, "keys"), { body: { key_id: keyId } });
  }
}
