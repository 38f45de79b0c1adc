/**
 * A cheap byte scan of a JSON body before JSON.parse (docs/protocol.md §Limits): what JSON.parse costs in memory is
 * the number of values it builds — 16 MiB of `{},{},…` is 5.6 million objects, about 30 times the bytes — and how
 * deep it recurses. The scan counts values (every object, array, string and scalar; keys count as strings) and
 * tracks nesting depth, without allocating, and stops at the first limit crossed. It does not validate JSON:
 * JSON.parse still does, on a body now known to be cheap.
 */
export interface JsonLimits {
  /** Deepest nesting of objects and arrays (the top-level value is depth 1). */
  readonly maxDepth: number;
  /** Most values (objects, arrays, strings including keys, numbers, literals). */
  readonly maxValues: number;
}

export type JsonScan = { ok: true; values: number; depth: number } | { ok: false; reason: 'depth' | 'values' };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

export function scanJson(bytes: Uint8Array, limits: JsonLimits): JsonScan {
  let depth = 0;
  let deepest = 0;
  let values = 0;
  let inString = false;
  let escaped = false;
  let expectValue = true; // at the start, after `[`, `{`, `,` and `:` the next non-space byte starts a value
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    if (inString) {
      if (escaped) escaped = false;
      else if (b === BACKSLASH) escaped = true;
      else if (b === QUOTE) inString = false;
      continue;
    }
    if (b === QUOTE) {
      inString = true;
      expectValue = false;
      if (++values > limits.maxValues) return { ok: false, reason: 'values' };
    } else if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
      if (++depth > limits.maxDepth) return { ok: false, reason: 'depth' };
      if (depth > deepest) deepest = depth;
      if (++values > limits.maxValues) return { ok: false, reason: 'values' };
      expectValue = true;
    } else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
      depth -= 1;
      expectValue = false;
    } else if (b === COMMA || b === COLON) {
      expectValue = true;
    } else if (!isSpace(b) && expectValue) {
      expectValue = false;
      if (++values > limits.maxValues) return { ok: false, reason: 'values' };
    }
  }
  return { ok: true, values, depth: deepest };
}
