import { items, pages } from "./pagination";
import type { Transport } from "./transport";
import type {
  ApiKey,
  CreatedApiKey,
  CreateKeyRequest,
  IssueTokenRequest,
  ListKeysOptions,
  Page,
  RevokedToken,
  RotatedApiKey,
  RotateKeyRequest,
  ServiceToken,
} from "./types";

const path = (id: string, verb?: string) => `/v1/keys/${encodeURIComponent(id)}${verb ? `/${verb}` : ""}`;

export class KeysApi {
  constructor(private readonly http: Transport) {}

  /** Creates a key; the answer's `key` is the raw key, shown this once. */
  create(request: CreateKeyRequest): Promise<CreatedApiKey> {
    return this.http.send("POST", "/v1/keys", { body: request });
  }

  get(id: string): Promise<ApiKey> {
    return this.http.send("GET", path(id));
  }

  list(query: ListKeysOptions = {}): Promise<Page<ApiKey>> {
    return this.http.send("GET", "/v1/keys", { query });
  }

  pages(query: ListKeysOptions = {}): AsyncGenerator<Page<ApiKey>> {
    return pages((q) => this.list(q), query);
  }

  listAll(query: ListKeysOptions = {}): AsyncGenerator<ApiKey> {
    return items((q) => this.list(q), query);
  }

  /** Revokes the key and every token issued to it, at once; 409 when already revoked. */
  revoke(id: string): Promise<ApiKey> {
    return this.http.send("POST", path(id, "revoke"));
  }

  /** A new key replacing `id`; the old one keeps working for `grace_seconds`. */
  rotate(id: string, request: RotateKeyRequest = {}): Promise<RotatedApiKey> {
    return this.http.send("POST", path(id, "rotate"), { body: request });
  }
}

export class TokensApi {
  constructor(private readonly http: Transport) {}

  /** Exchanges the client's API key for a short-lived service token (a token cannot mint tokens). */
  issue(request: IssueTokenRequest = {}): Promise<ServiceToken> {
    return this.http.send("POST", "/v1/auth/token", { body: request });
  }

  /** Revokes a token by jti; without one, the token this client presents. */
  revoke(jti?: string): Promise<RevokedToken> {
    return this.http.send("POST", "/v1/auth/revoke", { body: jti === undefined ? {} : { jti } });
  }
}
