import { DecisionsApi } from "./decisions";
import { KeysApi, TokensApi } from "./keys";
import { NotificationsApi } from "./notifications";
import { OperatorsApi } from "./operators";
import { PoliciesApi } from "./policies";
import { ReceiptsApi } from "./receipts";
import { TelemetryApi } from "./telemetry";
import { type ClientOptions, Transport } from "./transport";

/**
 * A typed client of the Arbiter API over fetch: it runs unchanged on Bun, Deno, Node 20+, browsers
 * and edge runtimes.
 *
 *   const arbiter = new ArbiterClient({ baseUrl: "https://arbiter.example", apiKey });
 *   const decision = await arbiter.decisions.create({ kind: "deploy", title: "…", payload }, { idempotencyKey });
 *   const verdict = await arbiter.decisions.waitFor(decision.id, { timeoutSeconds: 600 });
 */
export class ArbiterClient {
  readonly decisions: DecisionsApi;
  readonly receipts: ReceiptsApi;
  readonly telemetry: TelemetryApi;
  readonly keys: KeysApi;
  readonly tokens: TokensApi;
  readonly operators: OperatorsApi;
  readonly notifications: NotificationsApi;
  readonly policies: PoliciesApi;

  constructor(options: ClientOptions) {
    const http = new Transport(options);
    this.receipts = new ReceiptsApi(http);
    this.decisions = new DecisionsApi(http, this.receipts);
    this.telemetry = new TelemetryApi(http);
    this.keys = new KeysApi(http);
    this.tokens = new TokensApi(http);
    this.operators = new OperatorsApi(http);
    this.notifications = new NotificationsApi(http);
    this.policies = new PoliciesApi(http);
  }
}
