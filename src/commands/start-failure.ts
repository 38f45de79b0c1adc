/**
 * Why the daemon could not start, in words that point the right way: which port of which setting is taken (the
 * common case: Mosquitto already on 1883 beside zigbee2mqtt) and what to do about it. Errors are told apart by their
 * `code` and `port`, never by their message.
 */
import type { GatewayConfig } from '../config/gateway-config.js';
import { ConfigError, GatewayError } from '../errors.js';

interface Listen {
  readonly setting: string;
  readonly flag: string | null;
  readonly host: string;
  readonly port: number;
  readonly kind: 'mqtt' | 'http';
}

/** The listeners the daemon opens with this config, as settings a user can change. */
function listeners(config: GatewayConfig): Listen[] {
  const out: Listen[] = [];
  if (config.mqtt.mode === 'embedded') {
    out.push({ setting: 'mqtt.port', flag: '--mqtt-port', host: config.mqtt.host, port: config.mqtt.port, kind: 'mqtt' });
    if (config.mqtt.tls) out.push({ setting: 'mqtt.tls.port', flag: null, host: config.mqtt.tls.host, port: config.mqtt.tls.port, kind: 'mqtt' });
    if (config.mqtt.websocket) out.push({ setting: 'mqtt.websocket.port', flag: null, host: config.mqtt.websocket.host, port: config.mqtt.websocket.port, kind: 'mqtt' });
  }
  if (config.http.port !== null) out.push({ setting: 'http.port', flag: '--http-port', host: config.http.host, port: config.http.port, kind: 'http' });
  return out;
}

function errnoOf(err: unknown): { code: string; port: number | undefined } | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err) || typeof err.code !== 'string') return undefined;
  const port = 'port' in err && typeof err.port === 'number' ? err.port : undefined;
  return { code: err.code, port };
}

function another(l: Listen): string {
  const how = l.flag ? `${l.flag} N (or ${l.setting} in the config)` : `${l.setting} in the config`;
  return `give it another port: ${how}`;
}

function portInUse(l: Listen): string {
  const who = `ss -ltnp 'sport = :${l.port}'`;
  if (l.kind === 'http') {
    return [
      `cannot start: port ${l.port} on ${l.host} (${l.setting}, the health and control listener) is already in use — another inbetweenies-gateway? (${who} shows who)`,
      `  - stop the other one, or ${another(l)}`,
    ].join('\n');
  }
  return [
    `cannot start: MQTT port ${l.port} on ${l.host} (${l.setting}) is already in use, probably by another MQTT broker such as Mosquitto (${who} shows who).`,
    `  - to use that broker instead of embedding one: set mqtt.mode: external and mqtt.external.url: mqtt://127.0.0.1:${l.port} (docs/security.md, "External broker mode")`,
    `  - or ${another(l)}`,
  ].join('\n');
}

/** A message for a start failure the user can fix, or undefined for anything else (left to propagate). */
export function describeStartFailure(err: unknown, config: GatewayConfig): string | undefined {
  if (err instanceof ConfigError) return err.message;
  const errno = errnoOf(err);
  if (errno !== undefined) {
    const all = listeners(config);
    const l = all.find((x) => x.port === errno.port) ?? (errno.port === undefined ? undefined : { setting: 'a listener port', flag: null, host: '?', port: errno.port, kind: 'mqtt' as const });
    if (errno.code === 'EADDRINUSE' && l) return portInUse(l);
    if (errno.code === 'EACCES' && l) return `cannot start: no permission to listen on port ${l.port} (${l.setting}): ports below 1024 need root or CAP_NET_BIND_SERVICE; ${another(l)}`;
    if (errno.code === 'EADDRNOTAVAIL' && l) return `cannot start: ${l.host} (the host of ${l.setting}) is not an address of this machine; use 0.0.0.0, 127.0.0.1 or one of its own addresses`;
  }
  if (err instanceof GatewayError && err.code === 'STORE') return `cannot start: ${err.message}`;
  if (err instanceof GatewayError && err.code === 'INSECURE_PERMISSIONS') return err.message; // says which chmod fixes it
  // The data directory or the store file (mkdir's errno codes, better-sqlite3's SQLITE_CANTOPEN, SQLITE_READONLY, …).
  if (errno !== undefined && errno.port === undefined && (/^E[A-Z]+$/.test(errno.code) || errno.code.startsWith('SQLITE_'))) {
    const message = err instanceof Error ? err.message : errno.code;
    return `cannot start: the store in ${config.dataDir} (dataDir, --data-dir) cannot be opened: ${message}`;
  }
  return undefined;
}
