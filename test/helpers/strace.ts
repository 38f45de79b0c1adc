/**
 * Reading an `strace -f -ttt -T -yy -xx` trace: syscalls with their thread, start and end time (epoch seconds), the
 * path or socket of their fd, and the bytes they moved. Used by the PUBACK-after-fsync proof
 * (test/daemon/puback-fsync.test.ts), which needs to know, across every thread of the daemon, when each fsync of the
 * store's WAL ended and when each PUBACK's bytes were handed to the client's socket.
 */
import { execFileSync } from 'node:child_process';

export interface Syscall {
  readonly pid: number;
  readonly name: string;
  /** Epoch seconds (µs resolution) when the call was entered. */
  readonly start: number;
  /** start + the duration strace measured (-T). */
  readonly end: number;
  /** What -yy says the first argument's fd is: a file path, or `TCP:[a:p->b:q]`. Empty when not an fd call. */
  readonly fdPath: string;
  /** Bytes of the data argument (read: what was read; write/writev/send*: what was written). */
  readonly data: Buffer;
  readonly result: number;
  /** strace shortened a data string (raise -s): the bytes are incomplete. */
  readonly truncated: boolean;
}

/** Throws with the reason when strace is not installed: a test that needs it fails, never skips. */
export function requireStrace(): string {
  try {
    return execFileSync('strace', ['-V'], { encoding: 'utf8' }).split('\n')[0] ?? 'strace';
  } catch (err) {
    throw new Error(`strace is required by this test (Debian package strace, installed by .ci/run): ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The strace options the parser understands: every thread, absolute µs timestamps, durations, fd paths, hex data. */
export function straceArgs(traceFile: string, syscalls: readonly string[], maxString = 65_536): string[] {
  return ['-f', '-ttt', '-T', '-yy', '-xx', '-s', String(maxString), '-e', `trace=${syscalls.join(',')}`, '-o', traceFile];
}

/** Decodes a C string as strace prints it with -xx (every byte \xNN), tolerating the few escapes it may still use. */
function decodeCString(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i] ?? '';
    if (ch !== '\\') {
      bytes.push(ch.charCodeAt(0));
      continue;
    }
    const next = text[i + 1] ?? '';
    if (next === 'x') {
      bytes.push(parseInt(text.slice(i + 2, i + 4), 16));
      i += 3;
    } else if (/[0-7]/.test(next)) {
      const m = /^[0-7]{1,3}/.exec(text.slice(i + 1)) ?? ['0'];
      bytes.push(parseInt(m[0], 8));
      i += m[0].length;
    } else {
      const simple: Record<string, number> = { n: 10, t: 9, r: 13, v: 11, f: 12, '\\': 92, '"': 34 };
      bytes.push(simple[next] ?? next.charCodeAt(0));
      i += 1;
    }
  }
  return Buffer.from(bytes);
}

/** The quoted strings of an argument list, in order ("..." possibly followed by ... when strace truncated it). */
function quotedStrings(args: string): Array<{ value: Buffer; truncated: boolean }> {
  const out: Array<{ value: Buffer; truncated: boolean }> = [];
  const re = /"((?:[^"\\]|\\.)*)"(\.\.\.)?/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(args)) !== null) out.push({ value: decodeCString(m[1] ?? ''), truncated: m[2] !== undefined });
  return out;
}

const LINE = /^(\d+)\s+(\d+\.\d+)\s+(.*)$/;
const CALL = /^([a-z0-9_]+)\((.*)\)\s+=\s+(-?\d+|\?)(?:\s+[A-Z]\w*\s+\([^)]*\))?\s+<(\d+\.\d+)>$/;
const UNFINISHED = /^([a-z0-9_]+)\((.*)\s+<unfinished \.\.\.>$/;
const RESUMED = /^<\.\.\. ([a-z0-9_]+) resumed>(.*)\)\s+=\s+(-?\d+|\?)(?:\s+[A-Z]\w*\s+\([^)]*\))?\s+<(\d+\.\d+)>$/;

/** `7</path>` (path hex-escaped with -xx) or `7<TCP:[a:p->b:q]>` / `7<TCPv6:[[a]:p->[b]:q]>` (sockets, not escaped). */
const FD = /^\d+<((?:TCP|UDP|UNIX)[^\]]*?:\[.*?\]|(?:[^>\\]|\\.)*)>/;

function fdPathOf(args: string): string {
  const m = FD.exec(args);
  return m ? decodeCString(m[1] ?? '').toString('latin1') : '';
}

/** Parses a trace into syscalls (a call split into `<unfinished ...>` / `<... resumed>` by another thread is joined). */
export function parseTrace(text: string): Syscall[] {
  const calls: Syscall[] = [];
  const pending = new Map<number, { name: string; start: number; args: string }>();
  for (const line of text.split('\n')) {
    const head = LINE.exec(line);
    if (!head) continue;
    const pid = Number(head[1]);
    const ts = Number(head[2]);
    const rest = head[3] ?? '';
    let name: string;
    let start: number;
    let args: string;
    let result: string;
    let duration: number;
    const unfinished = UNFINISHED.exec(rest);
    if (unfinished) {
      pending.set(pid, { name: unfinished[1] ?? '', start: ts, args: unfinished[2] ?? '' });
      continue;
    }
    const resumed = RESUMED.exec(rest);
    const call = resumed ? undefined : CALL.exec(rest);
    if (resumed) {
      const first = pending.get(pid);
      pending.delete(pid);
      if (!first || first.name !== resumed[1]) continue;
      name = first.name;
      start = first.start;
      args = first.args + (resumed[2] ?? '');
      result = resumed[3] ?? '?';
      duration = Number(resumed[4]);
    } else if (call) {
      name = call[1] ?? '';
      start = ts;
      args = call[2] ?? '';
      result = call[3] ?? '?';
      duration = Number(call[4]);
    } else {
      continue;
    }
    const strings = quotedStrings(args.replace(FD, ''));
    calls.push({
      pid,
      name,
      start,
      end: start + duration,
      fdPath: fdPathOf(args),
      data: Buffer.concat(strings.map((s) => s.value)),
      result: result === '?' ? NaN : Number(result),
      truncated: strings.some((s) => s.truncated),
    });
  }
  return calls;
}

export interface MqttPacket {
  /** First byte: packet type << 4 | flags. */
  readonly header: number;
  readonly body: Buffer;
  /** The syscall that carried the packet's last byte. */
  readonly call: Syscall;
}

/**
 * Splits the bytes of consecutive syscalls on one connection into MQTT packets (MQTT 3.1.1 §2.2: a fixed header byte,
 * the remaining length as a variable byte integer, then the rest). Each packet is tagged with the call that completed
 * it (for a read: when the daemon had the whole packet; for a write: when its last byte was handed to the socket).
 */
export function mqttPackets(calls: readonly Syscall[]): MqttPacket[] {
  const packets: MqttPacket[] = [];
  let buffer = Buffer.alloc(0);
  for (const call of calls) {
    if (!(call.result > 0)) continue;
    buffer = Buffer.concat([buffer, call.data.subarray(0, call.result)]);
    for (;;) {
      if (buffer.length < 2) break;
      let length = 0;
      let multiplier = 1;
      let i = 1;
      let complete = false;
      while (i < buffer.length && i <= 4) {
        const byte = buffer[i] ?? 0;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        i += 1;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || buffer.length < i + length) break;
      packets.push({ header: buffer[0] ?? 0, body: buffer.subarray(i, i + length), call });
      buffer = buffer.subarray(i + length);
    }
  }
  return packets;
}
