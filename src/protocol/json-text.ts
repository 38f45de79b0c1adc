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
 * `path: problem`, or undefined when there is none.
 */
export function jsonTextProblem(value: unknown, maxDepth: number, path: string): string | undefined {
  return walk(value, 1, maxDepth, path);
}

function walk(value: unknown, depth: number, maxDepth: number, path: string): string | undefined {
  if (typeof value === 'string') return value.isWellFormed() ? undefined : `${path}: string is not well-formed Unicode (unpaired surrogate)`;
  if (typeof value !== 'object' || value === null) return undefined;
  if (depth > maxDepth) return `${path}: nested deeper than ${maxDepth} levels`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = walk(value[i], depth + 1, maxDepth, `${path}.${i}`);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    if (!key.isWellFormed()) return `${path}: a key is not well-formed Unicode (unpaired surrogate)`;
    const problem = walk(item, depth + 1, maxDepth, `${path}.${key}`);
    if (problem !== undefined) return problem;
  }
  return undefined;
}
