/**
 * Proof that a PUBACK follows the fsync of the commit holding its message (design: durable ingest). kill -9 cannot
 * see a missing fsync — the page cache survives the process — so this test watches the daemon's system calls
 * instead: the built daemon (`node dist/cli.js run`) runs under `strace -f` (every thread: a writer thread's fsync is
 * seen like the main thread's), devices publish QoS 1 states one at a time and in a pipelined burst, and for every
 * QoS 1 PUBLISH read from a device's socket, an fsync/fdatasync of the store's WAL file must have started after the
 * daemon had read that PUBLISH and ended before the first byte of its PUBACK (0x40 0x02 <packet id>) was written to
 * that socket.
 *
 * Mutations it catches (each made once on the code, seen failing, reverted): the durable commit made relaxed
 * (synchronous=NORMAL: no fsync at commit), and the store opened with synchronous=OFF.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { onLines } from '../../src/util/lines.js';
import { assertBuilt, CLI } from '../helpers/daemon-process.js';
import { mqttPackets, parseTrace, requireStrace, straceArgs, type Syscall } from '../helpers/strace.js';

const SYSCALLS = ['fsync', 'fdatasync', 'read', 'readv', 'recvfrom', 'recvmsg', 'write', 'writev', 'sendto', 'sendmsg'];
const SEQUENTIAL = 12;
const BURST = 40;

const dir = mkdtempSync(join(tmpdir(), 'ib-puback-fsync-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface TracedRun {
  readonly calls: Syscall[];
  readonly clientPort: number;
  readonly lines: string[];
}

/** The daemon under strace; runs `drive` against its broker, stops it (SIGTERM), returns the parsed trace. */
async function traced(drive: (url: string) => Promise<number>): Promise<TracedRun> {
  requireStrace();
  assertBuilt();
  const traceFile = join(dir, 'trace.txt');
  const args = [...straceArgs(traceFile, SYSCALLS), process.execPath, CLI, 'run', '--data-dir', join(dir, 'gw'), '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--http-port', '0'];
  const strace = spawn('strace', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, INBETWEENIES_LOG_LEVEL: 'info' } });
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) => strace.once('exit', () => resolve()));
  strace.stderr.on('data', (c: Buffer) => lines.push(`stderr: ${c.toString()}`));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not start under strace:\n${lines.join('\n')}`)), 30_000);
    onLines(strace.stdout, (line) => {
      lines.push(line);
      const started = /"mqtt":"[^"]*:(\d+)".*"msg":"gateway started"/.exec(line);
      if (started) {
        clearTimeout(timer);
        resolve(Number(started[1]));
      }
    });
    void exited.then(() => reject(new Error(`strace exited before the daemon listened:\n${lines.join('\n')}`)));
  });
  let clientPort = 0;
  try {
    clientPort = await drive(`mqtt://127.0.0.1:${port}`);
  } finally {
    // Stop the traced node process itself (strace exits with it); killing strace would only detach it.
    const children = readFileSync(`/proc/${strace.pid}/task/${strace.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    for (const child of children) process.kill(Number(child), 'SIGTERM');
    await exited;
  }
  return { calls: parseTrace(readFileSync(traceFile, 'utf8')), clientPort, lines };
}

/** Publishes QoS 1 states one at a time (each after the previous PUBACK), then a pipelined burst; returns the client's port. */
async function publishStates(url: string): Promise<number> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: 'fsync-proof' });
  const localPort = (client.stream as { localPort?: number }).localPort ?? 0;
  for (let i = 0; i < SEQUENTIAL; i += 1) {
    await client.publishAsync(`devices/proof-${i % 3}/state`, JSON.stringify({ counter: i }), { qos: 1 });
  }
  await Promise.all(
    Array.from({ length: BURST }, (_, i) => client.publishAsync(`devices/burst-${i % 7}/state`, JSON.stringify({ counter: 1000 + i }), { qos: 1 })),
  );
  await client.endAsync();
  return localPort;
}

describe('PUBACK after fsync (strace)', () => {
  it('every QoS 1 PUBACK is written to the socket only after an fsync of the WAL that began after its PUBLISH was read', async () => {
    const run = await traced(publishStates);
    const socket = (c: Syscall): boolean => c.fdPath.includes(`:${run.clientPort}]`);
    const onSocket = run.calls.filter(socket);
    expect(onSocket.filter((c) => c.truncated), 'strace shortened socket data (raise -s)').toEqual([]);
    const isRead = (c: Syscall): boolean => ['read', 'readv', 'recvfrom', 'recvmsg'].includes(c.name);
    const inbound = mqttPackets(onSocket.filter(isRead).sort((a, b) => a.end - b.end));
    const outbound = mqttPackets(onSocket.filter((c) => !isRead(c)).sort((a, b) => a.start - b.start));
    const walSyncs = run.calls.filter((c) => (c.name === 'fsync' || c.name === 'fdatasync') && c.fdPath.endsWith('gateway.db-wal') && c.result === 0);

    // QoS 1 PUBLISHes (type 3, QoS bits 01): topic length, topic, packet id.
    const publishes = inbound
      .filter((p) => p.header >> 4 === 3 && ((p.header >> 1) & 3) === 1)
      .map((p) => ({ id: p.body.readUInt16BE(2 + p.body.readUInt16BE(0)), readAt: p.call.end }));
    const pubacks = outbound.filter((p) => p.header === 0x40 && p.body.length === 2).map((p) => ({ id: p.body.readUInt16BE(0), writtenAt: p.call.start }));
    expect(publishes, run.lines.slice(-10).join('\n')).toHaveLength(SEQUENTIAL + BURST);
    expect(pubacks).toHaveLength(SEQUENTIAL + BURST);
    expect(walSyncs.length, 'no fsync of gateway.db-wal at all').toBeGreaterThan(0);

    const violations: string[] = [];
    for (const publish of publishes) {
      const puback = pubacks.find((a) => a.id === publish.id && a.writtenAt >= publish.readAt);
      if (!puback) {
        violations.push(`packet ${publish.id}: no PUBACK after its PUBLISH`);
        continue;
      }
      const covering = walSyncs.find((s) => s.start >= publish.readAt && s.end <= puback.writtenAt);
      if (!covering) {
        const gap = ((puback.writtenAt - publish.readAt) * 1000).toFixed(3);
        violations.push(`packet ${publish.id}: PUBACK ${gap} ms after its PUBLISH with no WAL fsync in between`);
      }
    }
    expect(violations).toEqual([]);
  }, 90_000);
});
