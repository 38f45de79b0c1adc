/**
 * Client-supplied strings (client ids, usernames, topics, filters) go into log lines only clipped: a CONNECT may
 * carry a 64 KiB client id, and one such line per event would fill the journal (a 60 KB log line each).
 */

/** Characters of a client-supplied string kept in a log line. */
export const LOG_FIELD_CHARS = 128;

/** `value` itself when short; else its first `max` characters and how many were left out. */
export function clip(value: string | undefined | null, max = LOG_FIELD_CHARS): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (value.length <= max) return value;
  return `${value.slice(0, max)}…(+${value.length - max} chars)`;
}
