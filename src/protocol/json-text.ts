/**
 * Text inside JSON that every client can read back (docs/protocol.md §Validation): every string and every object key
 * must be well-formed Unicode — a lone surrogate such as "\ud800" is valid JSON but not UTF-8, so it cannot be stored
 * as text, compared, or decoded by strict clients (Python's sqlite3 and json round trips fail on it) — and a
 * value nests at most MAX_DATA_DEPTH levels, far inside what any JSON library parses (Python's json gives up near
 * 1,000 levels; a home's state needs a handful).
 */

/** Deepest nesting of a pushed change's `data` (the `data` object itself is level 1). */
export const MAX_DATA_DEPTH = 32;

/** Whether `text` is well-formed Unicode (no unpaired surrogate). */
export function isWellFormedText(text: string): boolean {
  return text.isWellFormed();
}

/**
 * Checks every key and string of `value` for well-formed Unicode and its nesting depth; returns the first problem as
 * `path: problem`, or undefined when there is none. The path is built only for a problem (a large clean value costs
 * no allocation).
 */
export function jsonTextProblem(value: unknown, maxDepth: number, path: string): string | undefined {
  const trail: string[] = [];
  const problem = walk(value, 1, maxDepth, trail);
  return problem === undefined ? undefined : `${[path, ...trail.reverse()].join('.')}: ${problem}`;
}

/** Returns the problem found under `value`; on the way out, `trail` collects the keys leading to it (innermost first). */
function walk(value: unknown, depth: number, maxDepth: number, trail: string[]): string | undefined {
  if (typeof value === 'string') return value.isWellFormed() ? undefined : 'string is not well-formed Unicode (unpaired surrogate)';
  if (typeof value !== 'object' || value === null) return undefined;
  if (depth > maxDepth) return `nested deeper than ${maxDepth} levels`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = walk(value[i], depth + 1, maxDepth, trail);
      if (problem !== undefined) {
        trail.push(String(i));
        return problem;
      }
    }
    return undefined;
  }
  for (const key in value) {
    if (!Object.prototype.hasOwnProperty.call(value, key)) continue;
    if (!key.isWellFormed()) return 'a key is not well-formed Unicode (unpaired surrogate)';
    const problem = walk((value as Record<string, unknown>)[key], depth + 1, maxDepth, trail);
    if (problem !== undefined) {
      trail.push(key.toWellFormed());
      return problem;
    }
  }
  return undefined;
}
