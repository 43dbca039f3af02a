import { items, pages } from "./pagination";
import type { Transport } from "./transport";
import type {
  CreateNotificationRouteRequest,
  NotificationDelivery,
  NotificationRoute,
  Page,
  UpdateNotificationRouteRequest,
} from "./types";

const path = (id: string) => `/v1/notification-routes/${encodeURIComponent(id)}`;

/** Who is told about which decisions, and where; and what was sent about one decision. */
export class NotificationsApi {
  constructor(private readonly http: Transport) {}

  createRoute(request: CreateNotificationRouteRequest): Promise<NotificationRoute> {
    return this.http.send("POST", "/v1/notification-routes", { body: request });
  }

  getRoute(id: string): Promise<NotificationRoute> {
    return this.http.send("GET", path(id));
  }

  listRoutes(query: { limit?: number; cursor?: string } = {}): Promise<Page<NotificationRoute>> {
    return this.http.send("GET", "/v1/notification-routes", { query });
  }

  routePages(query: { limit?: number; cursor?: string } = {}): AsyncGenerator<Page<NotificationRoute>> {
    return pages((q) => this.listRoutes(q), query);
  }

  allRoutes(query: { limit?: number; cursor?: string } = {}): AsyncGenerator<NotificationRoute> {
    return items((q) => this.listRoutes(q), query);
  }

  /** Changes or disables (`{ enabled: false }`) a route; absolute values, so safe to retry. */
  updateRoute(id: string, request: UpdateNotificationRouteRequest): Promise<NotificationRoute> {
    return this.http.send("PATCH", path(id), { body: request, idempotent: true });
  }

  /** The delivery log of one decision, oldest first. */
  async deliveries(decisionId: string): Promise<NotificationDelivery[]> {
    const page = await this.http.send<{ data: NotificationDelivery[] }>(
      "GET",
      `/v1/decisions/${encodeURIComponent(decisionId)}/notifications`,
    );
    return page.data;
  }
}
