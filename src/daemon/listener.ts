/**
 * The daemon's HTTP listener as a component (loaded only when `http.port` is set): the guard (Host, token, POST
 * rates), Prometheus metrics, the control endpoints, the status page with its live stream and data endpoints.
 */
import type { GatewayConfig } from '../config/gateway-config.js';
import type { Logger } from '../log.js';
import { roomNames, withRoomNames } from '../store/device-queries.js';
import type { GatewayStore } from '../store/index.js';
import { controlHandlers, type ControlContext } from './control.js';
import type { EventHub } from './events.js';
import { HttpGuard } from './http-guard.js';
import { ControlServer } from './http.js';
import type { Component } from './lifecycle.js';
import { GatewayMetrics, type MetricsSources } from './metrics.js';
import { pageStatus } from './page-data.js';
import { StatusFeed } from './status-feed.js';
import { loadStatusPage, statusPageRoutes } from './status-page.js';

export interface ListenerDeps {
  readonly http: GatewayConfig['http'];
  readonly logger: Logger;
  readonly version: string;
  readonly ctx: ControlContext;
  readonly hub: EventHub;
  readonly store: GatewayStore;
  readonly metrics: MetricsSources;
  /** Told the listener's URL once it listens. */
  readonly onListening: (url: string) => void;
}

/** Recent conflicts the page shows. */
const PAGE_CONFLICTS = 10;

export function controlListener(deps: ListenerDeps): Component {
  const { http, store } = deps;
  const metrics = new GatewayMetrics(deps.metrics);
  const devices = () => withRoomNames(store.entities.devices(), roomNames(store));
  const feed = new StatusFeed({
    hub: deps.hub,
    logger: deps.logger,
    maxClients: http.maxEventClients,
    status: () => pageStatus(deps.ctx.status(), deps.version),
    devices,
    devicesOf: (ids) => {
      const { devices: found, missing } = store.entities.devicesOf(ids);
      return { devices: withRoomNames(found, roomNames(store)), missing };
    },
    conflicts: () => store.conflicts.recent(PAGE_CONFLICTS),
  });
  const routes = statusPageRoutes({ page: loadStatusPage(), feed, devices, conflicts: (limit) => store.conflicts.recent(limit) });
  const guard = new HttpGuard({ token: http.token, allowedHosts: http.allowedHosts });
  let server: ControlServer | undefined;
  return {
    name: 'control listener',
    start: async () => {
      server = new ControlServer({ host: http.host, port: http.port ?? 0, logger: deps.logger, handlers: controlHandlers(deps.ctx, metrics), guard, extraRoutes: routes });
      deps.onListening((await server.listen()).url);
    },
    stop: async () => {
      feed.close();
      await server?.close();
    },
  };
}
