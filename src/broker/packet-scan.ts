/**
 * Reads the MQTT byte stream as it arrives, before mqtt-packet parses it (docs/security.md §Limits):
 *
 * - the fixed header of every packet (MQTT 3.1.1 §2.2.3, remaining length): a packet declaring more than
 *   `maxPacketBytes` is refused after its first five bytes instead of being buffered by the parser (mqtt-packet has
 *   no size cap);
 * - the UTF-8 strings of CONNECT (client id, will topic, username), PUBLISH (topic name), SUBSCRIBE and UNSUBSCRIBE
 *   (topic filters): ill-formed UTF-8 or U+0000 must close the connection (MQTT-1.5.3-1, MQTT-1.5.3-2).
 *   mqtt-packet decodes with Buffer#toString, which silently turns bad sequences into U+FFFD, so the raw bytes are
 *   checked here. Only those fields are collected: of a PUBLISH, its topic; the payload passes uncopied.
 *
 * MQTT 3.1.1 has no way to tell the client why; closing the connection is what the specification asks for here,
 * and what Mosquitto does for `max_packet_size`.
 */
import { isUtf8 } from 'node:buffer';

export type ScanVerdict =
  | { readonly kind: 'too_large'; readonly declared: number }
  | { readonly kind: 'malformed' }
  | { readonly kind: 'bad_string'; readonly field: string; readonly problem: string };

const CONNECT = 1;
const PUBLISH = 3;
const SUBSCRIBE = 8;
const UNSUBSCRIBE = 10;

/** Why `bytes` is not an MQTT UTF-8 string (§1.5.3), or undefined. */
export function mqttStringProblem(bytes: Uint8Array): string | undefined {
  if (!isUtf8(bytes)) return 'ill-formed UTF-8 (MQTT-1.5.3-1)';
  if (bytes.includes(0)) return 'U+0000 (MQTT-1.5.3-2)';
  return undefined;
}

/** Reads a length-prefixed string at `at`; undefined when the body is too short (mqtt-packet reports that). */
function stringAt(body: Buffer, at: number): { bytes: Buffer; next: number } | undefined {
  if (at + 2 > body.length) return undefined;
  const length = body.readUInt16BE(at);
  if (at + 2 + length > body.length) return undefined;
  return { bytes: body.subarray(at + 2, at + 2 + length), next: at + 2 + length };
}

function badString(field: string, bytes: Buffer | undefined): ScanVerdict | undefined {
  if (!bytes) return undefined;
  const problem = mqttStringProblem(bytes);
  return problem ? { kind: 'bad_string', field, problem } : undefined;
}

/** CONNECT (§3.1): client id, will topic and username are strings; will message and password are binary. */
function checkConnect(body: Buffer): ScanVerdict | undefined {
  const name = stringAt(body, 0);
  if (!name || name.next + 4 > body.length) return undefined;
  const level = body[name.next] ?? 0;
  if (level !== 3 && level !== 4) return undefined; // MQTT 5 has properties here; aedes answers it with CONNACK 1
  const flags = body[name.next + 1] ?? 0;
  const clientId = stringAt(body, name.next + 4);
  const problem = badString('client id', clientId?.bytes);
  if (problem || !clientId) return problem;
  let at = clientId.next;
  if (flags & 0x04) {
    const willTopic = stringAt(body, at);
    const willProblem = badString('will topic', willTopic?.bytes);
    if (willProblem || !willTopic) return willProblem;
    const willMessage = stringAt(body, willTopic.next);
    if (!willMessage) return undefined;
    at = willMessage.next;
  }
  return flags & 0x80 ? badString('username', stringAt(body, at)?.bytes) : undefined;
}

/** SUBSCRIBE (§3.8): packet id, then (filter, options byte) pairs; UNSUBSCRIBE (§3.10): packet id, then filters. */
function checkFilters(body: Buffer, withOptions: boolean): ScanVerdict | undefined {
  let at = 2;
  while (at < body.length) {
    const filter = stringAt(body, at);
    if (!filter) return undefined;
    const problem = badString('topic filter', filter.bytes);
    if (problem) return problem;
    at = filter.next + (withOptions ? 1 : 0);
  }
  return undefined;
}

/** Scans fixed headers and string fields across chunk boundaries. */
export class PacketScanner {
  readonly #max: number;
  /** Bytes of the current packet's body still to pass unread. */
  #skip = 0;
  /** 0: expecting a header byte; 1–4: reading remaining-length byte n. */
  #lengthByte = 0;
  #type = 0;
  #length = 0;
  #multiplier = 1;
  /** Body bytes of the current packet still to collect, and those collected. */
  #want = 0;
  #collected: Buffer[] = [];
  #collectedBytes = 0;
  #bodyLeft = 0;

  constructor(maxPacketBytes: number) {
    this.#max = maxPacketBytes;
  }

  feed(chunk: Buffer): ScanVerdict | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.#want > 0 && this.#type === PUBLISH && this.#collectedBytes === 0) {
        const fast = this.#topicInPlace(chunk, i);
        if (fast !== undefined) {
          if (fast.verdict) return fast.verdict;
          i = fast.next;
          continue;
        }
      }
      if (this.#want > 0) {
        const n = Math.min(this.#want, chunk.length - i);
        this.#collect(chunk.subarray(i, i + n));
        i += n;
        if (this.#want === 0) {
          const verdict = this.#inspect();
          if (verdict) return verdict;
        }
        continue;
      }
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
        continue;
      }
      const verdict = this.#header(chunk[i] ?? 0);
      i += 1;
      if (verdict) return verdict;
    }
    return undefined;
  }

  #header(byte: number): ScanVerdict | undefined {
    if (this.#lengthByte === 0) {
      this.#lengthByte = 1;
      this.#type = byte >> 4;
      this.#length = 0;
      this.#multiplier = 1;
      return undefined;
    }
    this.#length += (byte & 0x7f) * this.#multiplier;
    this.#multiplier *= 128;
    if (byte & 0x80) {
      if (this.#lengthByte === 4) return { kind: 'malformed' }; // §2.2.3: at most four bytes
      this.#lengthByte += 1;
      return undefined;
    }
    this.#lengthByte = 0;
    if (this.#length > this.#max) return { kind: 'too_large', declared: this.#length };
    this.#startBody();
    return undefined;
  }

  /** What of the body to collect: a PUBLISH's topic length first; CONNECT, SUBSCRIBE and UNSUBSCRIBE whole. */
  #startBody(): void {
    this.#collected = [];
    this.#collectedBytes = 0;
    this.#bodyLeft = this.#length;
    const wanted = this.#type === PUBLISH ? 2 : [CONNECT, SUBSCRIBE, UNSUBSCRIBE].includes(this.#type) ? this.#length : 0;
    this.#want = Math.min(wanted, this.#length);
    this.#skip = this.#length - this.#want;
  }

  /**
   * The common case: a PUBLISH whose topic lies whole in this chunk is checked where it is, without copying. Returns
   * undefined when the topic spans chunks (then it is collected).
   */
  #topicInPlace(chunk: Buffer, at: number): { verdict: ScanVerdict | undefined; next: number } | undefined {
    if (chunk.length - at < 2 || this.#bodyLeft < 2) return undefined;
    const topicBytes = Math.min(chunk.readUInt16BE(at), this.#bodyLeft - 2);
    if (chunk.length - at < 2 + topicBytes) return undefined;
    this.#want = 0;
    this.#skip = this.#bodyLeft - 2 - topicBytes;
    this.#bodyLeft = 0;
    const verdict = topicBytes > 0 ? badString('topic name', chunk.subarray(at + 2, at + 2 + topicBytes)) : undefined;
    return { verdict, next: at + 2 + topicBytes };
  }

  #collect(part: Buffer): void {
    this.#collected.push(part);
    this.#collectedBytes += part.length;
    this.#want -= part.length;
    this.#bodyLeft -= part.length;
  }

  #inspect(): ScanVerdict | undefined {
    const body = this.#collected.length === 1 ? (this.#collected[0] as Buffer) : Buffer.concat(this.#collected, this.#collectedBytes);
    if (this.#type === PUBLISH && this.#collectedBytes === 2) {
      // Now the topic length is known: collect the topic itself (§3.3.2.1), pass the rest.
      const topicBytes = Math.min(body.readUInt16BE(0), this.#bodyLeft);
      this.#skip = this.#bodyLeft - topicBytes;
      this.#want = topicBytes;
      if (topicBytes > 0) return undefined; // keep the length bytes collected; inspected again with the topic
      this.#collected = [];
      this.#collectedBytes = 0;
      return undefined; // an empty topic: aedes refuses it
    }
    this.#collected = [];
    this.#collectedBytes = 0;
    if (this.#type === PUBLISH) return badString('topic name', body.subarray(2));
    if (this.#type === CONNECT) return checkConnect(body);
    return checkFilters(body, this.#type === SUBSCRIBE);
  }
}
