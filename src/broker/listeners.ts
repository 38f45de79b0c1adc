/**
 * The broker's listeners (docs/security.md §Listeners): plain MQTT on TCP, MQTT over TLS
 * (certificate and key files read at start), and MQTT over WebSocket (the `ws` server aedes's examples use, behind a
 * node:http server so the upgrade can be refused before any WebSocket work). Each hands the accepted stream to one
 * handler; every raw socket first passes the shared ConnectionGate.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type * as WsNamespace from 'ws';

/** The `ws` module, imported by the caller only when a WebSocket listener is configured (it is heavy). */
export type WsModule = typeof WsNamespace;
import { ConfigError } from '../errors.js';
import type { GateTicket } from './limits.js';

export type ListenerKind = 'tcp' | 'tls' | 'websocket';

export interface Listener {
  readonly kind: ListenerKind;
  /** Resolves with the bound port. */
  start(): Promise<number>;
  stop(): Promise<void>;
}

export interface AcceptedConnection {
  readonly kind: ListenerKind;
  /** The slot the raw socket took at admission (released when it closes). */
  readonly ticket: GateTicket;
  readonly stream: Duplex;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly req?: IncomingMessage;
}

export interface ListenerHooks {
  /** Takes a slot for a raw socket, or destroys it and returns undefined. */
  readonly admit: (socket: Socket) => GateTicket | undefined;
  readonly accept: (connection: AcceptedConnection) => void;
  readonly onError: (reason: string, err: Error) => void;
}

export interface TcpListenerOptions {
  readonly host: string;
  readonly port: number;
}

export interface TlsListenerOptions extends TcpListenerOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** CA bundle for client certificates; with requireClientCert, clients must present one it signed. */
  readonly caFile?: string | undefined;
  readonly requireClientCert?: boolean | undefined;
  /** A TLS handshake not finished by then is dropped. */
  readonly handshakeTimeoutMs: number;
}

export interface WebSocketListenerOptions extends TcpListenerOptions {
  /** Only upgrades on this path are accepted (mqtt.js and most browsers' clients use /mqtt). */
  readonly path: string;
  /** Largest WebSocket message accepted (ws `maxPayload`). */
  readonly maxMessageBytes: number;
}

function listen(srv: NetServer, port: number, host: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => {
      srv.off('error', reject);
      const addr = srv.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}

/** Tracks sockets so stop() can end them (server.close() waits for open connections). */
function socketSet(): { add(s: Socket): void; destroyAll(): void } {
  const sockets = new Set<Socket>();
  return {
    add(s) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    },
    destroyAll() {
      for (const s of sockets) s.destroy();
    },
  };
}

function serverListener(kind: ListenerKind, srv: NetServer, options: TcpListenerOptions, destroyAll: () => void, extraStop?: () => void): Listener {
  return {
    kind,
    start: () => listen(srv, options.port, options.host),
    async stop() {
      const closed = new Promise<void>((resolve) => srv.close(() => resolve()));
      extraStop?.();
      destroyAll();
      await closed;
    },
  };
}

export function createTcpListener(options: TcpListenerOptions, hooks: ListenerHooks): Listener {
  const sockets = socketSet();
  const srv = createNetServer((socket) => {
    socket.on('error', () => undefined); // aedes reports it through clientError/connectionError
    const ticket = hooks.admit(socket);
    if (!ticket) return;
    sockets.add(socket);
    hooks.accept({ kind: 'tcp', ticket, stream: socket, remoteAddress: socket.remoteAddress, remotePort: socket.remotePort });
  });
  srv.on('error', (err) => hooks.onError('listener_error', err));
  return serverListener('tcp', srv, options, () => sockets.destroyAll());
}

function readPem(file: string, key: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError([`mqtt.tls.${key}: cannot read ${file}: ${(err as Error).message}`], 'broker tls listener');
  }
}

export function createTlsListener(options: TlsListenerOptions, hooks: ListenerHooks): Listener {
  const sockets = socketSet();
  const cert = readPem(options.certFile, 'certFile');
  const key = readPem(options.keyFile, 'keyFile');
  const ca = options.caFile ? readPem(options.caFile, 'caFile') : undefined;
  let srv;
  try {
    srv = createTlsServer({
      cert,
      key,
      ca,
      requestCert: options.requireClientCert ?? false,
      rejectUnauthorized: options.requireClientCert ?? false,
      handshakeTimeout: options.handshakeTimeoutMs,
      minVersion: 'TLSv1.2',
    });
  } catch (err) {
    throw new ConfigError([`mqtt.tls: certificate or key not usable: ${(err as Error).message}`], 'broker tls listener');
  }
  // The raw socket passes the gate before the handshake costs anything. Its ticket is found again by the peer's
  // address and port: unique among this listener's open connections (its own address and port are fixed).
  const tickets = new Map<string, GateTicket>();
  const peerKey = (s: Socket): string => `${String(s.remoteAddress)}|${String(s.remotePort)}`;
  srv.on('connection', (socket: Socket) => {
    socket.on('error', () => undefined);
    const ticket = hooks.admit(socket);
    if (!ticket) return;
    sockets.add(socket);
    const key = peerKey(socket);
    tickets.set(key, ticket);
    socket.once('close', () => tickets.delete(key));
  });
  srv.on('secureConnection', (socket: TLSSocket) => {
    socket.on('error', () => undefined);
    const ticket = tickets.get(peerKey(socket));
    if (!ticket) {
      socket.destroy(); // its raw socket is gone already
      return;
    }
    hooks.accept({ kind: 'tls', ticket, stream: socket, remoteAddress: socket.remoteAddress, remotePort: socket.remotePort });
  });
  srv.on('tlsClientError', (err) => hooks.onError('tls_handshake_failed', err));
  srv.on('error', (err) => hooks.onError('listener_error', err));
  return serverListener('tls', srv, options, () => sockets.destroyAll());
}

/** The MQTT WebSocket subprotocols (MQTT 3.1.1 §6: "mqtt"; 3.1: "mqttv3.1"). */
function pickProtocol(protocols: Set<string>): string | false {
  if (protocols.has('mqtt')) return 'mqtt';
  if (protocols.has('mqttv3.1')) return 'mqttv3.1';
  return false;
}

export function createWebSocketListener(options: WebSocketListenerOptions, hooks: ListenerHooks, ws: WsModule): Listener {
  const { createWebSocketStream, WebSocketServer } = ws;
  const sockets = socketSet();
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes, handleProtocols: pickProtocol });
  const srv: HttpServer = createHttpServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
    res.end('MQTT over WebSocket: upgrade required\n');
  });
  srv.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const raw = req.socket;
    raw.on('error', () => undefined);
    const path = (req.url ?? '').split('?')[0];
    if (path !== options.path) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const ticket = hooks.admit(raw);
    if (!ticket) return;
    sockets.add(raw);
    wss.handleUpgrade(req, socket, head, (client) => {
      const stream = createWebSocketStream(client);
      stream.on('error', () => undefined);
      hooks.accept({ kind: 'websocket', ticket, stream, remoteAddress: raw.remoteAddress, remotePort: raw.remotePort, req });
    });
  });
  srv.on('clientError', (err, socket) => {
    hooks.onError('http_client_error', err);
    socket.destroy();
  });
  srv.on('error', (err) => hooks.onError('listener_error', err));
  return serverListener('websocket', srv, options, () => sockets.destroyAll(), () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
  });
}
