/**
 * The status page on the daemon's HTTP listener: GET / serves one self-contained HTML file (status-page/page.html:
 * inline CSS and JS, no build step, nothing fetched from elsewhere) under a Content-Security-Policy that allows only
 * this origin and the page's own inline script and style (by hash); GET /events is its live stream
 * (status-feed.ts); GET /api/devices and GET /api/conflicts?limit=N are the same data as JSON, for the CLI.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { GatewayError } from '../errors.js';
import { MAX_CONFLICTS_READ, type ConflictEntry } from '../store/index.js';
import type { DeviceWithRoom } from '../store/device-queries.js';
import type { ExtraRoute } from './http.js';
import type { StatusFeed } from './status-feed.js';

export interface StatusPage {
  readonly html: Buffer;
  readonly csp: string;
}

/** Reads the page shipped beside this module (dist/daemon/status-page/page.html) and hashes its inline parts. */
export function loadStatusPage(url: URL = new URL('./status-page/page.html', import.meta.url)): StatusPage {
  const text = readFileSync(url, 'utf8');
  const hashes = (tag: 'script' | 'style'): string[] =>
    [...text.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => `'sha256-${createHash('sha256').update(m[1] ?? '').digest('base64')}'`);
  const scripts = hashes('script');
  const styles = hashes('style');
  if (scripts.length === 0 || styles.length === 0) throw new Error(`${url.pathname}: expected an inline <script> and <style>`);
  const csp = [
    "default-src 'self'",
    `script-src ${scripts.join(' ')}`,
    `style-src ${styles.join(' ')}`,
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html: Buffer.from(text, 'utf8'), csp };
}

export interface StatusPageRoutesOptions {
  readonly page: StatusPage;
  readonly feed: StatusFeed;
  readonly devices: () => DeviceWithRoom[];
  readonly conflicts: (limit: number) => ConflictEntry[];
}

export function statusPageRoutes(o: StatusPageRoutesOptions): Map<string, ExtraRoute> {
  return new Map<string, ExtraRoute>([
    ['/', { run: (_req, res) => sendPage(res, o.page) }],
    ['/events', { run: (req, res) => o.feed.open(req, res) }],
    ['/api/devices', { run: (_req, res) => sendJson(res, o.devices()) }],
    ['/api/conflicts', { run: (_req, res, url) => sendJson(res, o.conflicts(limitOf(url))) }],
  ]);
}

function limitOf(url: URL): number {
  const raw = url.searchParams.get('limit');
  if (raw === null) return 20;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_CONFLICTS_READ) throw new GatewayError('BAD_REQUEST', `limit: expected an integer 1..${MAX_CONFLICTS_READ}, got ${JSON.stringify(raw.slice(0, 20))}`);
  return n;
}

function sendPage(res: ServerResponse, page: StatusPage): void {
  res.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': page.html.length,
    'Content-Security-Policy': page.csp,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
  });
  res.end(page.html);
}

function sendJson(res: ServerResponse, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  res.end(text);
}
