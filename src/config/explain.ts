/**
 * Config problems a person can act on: zod's issues turned into "what is allowed, what was given" (enum and union
 * values spelled out), an unknown key with the nearest known one ("prot: unknown key; did you mean port?"), and the
 * line and column in the YAML file (the `yaml` document's node ranges). A value that came from the environment or a
 * flag says so instead of pointing into the file. Secrets are never echoed.
 */
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, YAMLParseError, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';

export interface ConfigProblem {
  /** Dotted path of the setting (`mqtt.allowAnonymous`), or the environment variable / `(file)`. */
  readonly path: string;
  readonly message: string;
  /** 1-based position in the YAML file, when the setting is written there. */
  readonly line?: number;
  readonly column?: number;
}

/** One line per problem, path first as before: `mqtt.port: expected … (line 7, column 9)`. */
export function formatProblem(p: ConfigProblem): string {
  const where = p.line === undefined ? '' : ` (line ${p.line}, column ${p.column ?? 1})`;
  return `${p.path}: ${p.message}${where}`;
}

/** A ConfigError whose problems are also kept structured (check-config --json); `problems` keeps its string form. */
export class GatewayConfigError extends ConfigError {
  readonly details: readonly ConfigProblem[];
  constructor(details: readonly ConfigProblem[], source: string) {
    super(details.map(formatProblem), source);
    this.details = details;
  }
}

/** A parsed YAML file that can say where a setting is written. */
export interface YamlSource {
  readonly tree: unknown;
  /** Position of the value at `path`, or of the key `key` inside the mapping at `path`. */
  locate(path: readonly PropertyKey[], key?: string): { line: number; column: number } | undefined;
}

export function parseYamlSource(text: string, file: string): YamlSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true });
  const first = doc.errors[0];
  if (first) {
    const pos = first.linePos?.[0];
    // The position is kept apart (line, column); the message without yaml's own " at line N, column M:".
    const text = first instanceof YAMLParseError ? (first.message.split('\n')[0] ?? first.message) : String(first);
    const message = text.replace(/ at line \d+, column \d+:?$/, '');
    throw new GatewayConfigError([{ path: '(file)', message: `YAML syntax: ${message}`, ...(pos ? { line: pos.line, column: pos.col } : {}) }], file);
  }
  return {
    tree: doc.toJS() as unknown,
    locate: (path, key) => {
      const node = nodeAt(doc, path);
      const target = key === undefined ? node : isMap(node) ? node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key)?.key : undefined;
      const offset = (target as Node | undefined)?.range?.[0];
      if (offset === undefined) return undefined;
      const pos = lineCounter.linePos(offset);
      return { line: pos.line, column: pos.col };
    },
  };
}

function nodeAt(doc: Document, path: readonly PropertyKey[]): unknown {
  let node: unknown = doc.contents;
  for (const segment of path) {
    if (isMap(node)) node = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(segment))?.value;
    else if (isSeq(node) && typeof segment === 'number') node = node.items[segment];
    else return undefined;
  }
  return node ?? undefined;
}

const SECRET = /secret|password|token|hash/i;

/** The value as a person would write it; secrets hidden. */
function given(input: unknown, path: readonly PropertyKey[]): string {
  if (path.some((p) => typeof p === 'string' && SECRET.test(p))) return '[redacted]';
  if (input === undefined) return 'nothing';
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'a mapping';
  const text = typeof input === 'string' ? JSON.stringify(input) : String(input);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

const TYPE_WORDS: Readonly<Record<string, string>> = {
  object: 'a mapping of settings',
  array: 'a list',
  boolean: 'true or false',
  number: 'a number',
  int: 'an integer',
  string: 'a string',
  null: 'null',
};

function joinOr(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1] ?? ''}`;
}

interface RawIssue {
  readonly code: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly input?: unknown;
  readonly expected?: string;
  readonly values?: readonly unknown[];
  readonly errors?: readonly (readonly RawIssue[])[];
  readonly keys?: readonly string[];
  readonly origin?: string;
  readonly format?: string;
  readonly minimum?: number | bigint;
  readonly maximum?: number | bigint;
  readonly inclusive?: boolean;
}

/** What one alternative of a union accepts, from its issue at the union's own level. */
function accepted(issue: RawIssue): string[] {
  if (issue.path.length > 0) return [];
  if (issue.code === 'invalid_type' && issue.expected === 'boolean') return ['true', 'false'];
  if (issue.code === 'invalid_type' && issue.expected) return [TYPE_WORDS[issue.expected] ?? `a ${issue.expected}`];
  if (issue.code === 'invalid_value' && issue.values) return issue.values.map((v) => JSON.stringify(v));
  return [];
}

function bound(issue: RawIssue, big: boolean): string {
  const n = String(big ? issue.maximum : issue.minimum);
  const word = big ? (issue.inclusive ? 'at most' : 'below') : issue.inclusive ? 'at least' : 'above';
  if (issue.origin === 'string') return big ? `expected at most ${n} characters` : n === '1' ? 'expected a non-empty string' : `expected at least ${n} characters`;
  if (issue.origin === 'array' || issue.origin === 'set') return `expected ${word} ${n} item(s)`;
  return `expected a number ${word} ${n}`;
}

/** "expected …, got …" for one issue (unknown keys are handled by the caller). */
function explain(issue: RawIssue): string {
  const got = `got ${given(issue.input, issue.path)}`;
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return `required: expected ${TYPE_WORDS[issue.expected ?? ''] ?? issue.expected ?? 'a value'}`;
      return `expected ${TYPE_WORDS[issue.expected ?? ''] ?? issue.expected ?? 'another type'}, ${got}`;
    case 'invalid_value': {
      const values = (issue.values ?? []).map((v) => JSON.stringify(v));
      return `expected ${values.length > 2 ? `one of ${joinOr(values)}` : joinOr(values)}, ${got}`;
    }
    case 'invalid_format':
      // zod's own words ("Invalid URL") say nothing; the schema's words ("one topic level without + # /") do.
      return `expected ${issue.message.startsWith('Invalid') ? (issue.format === 'url' ? 'a URL' : `a ${issue.format ?? 'value'} of the right form`) : issue.message}, ${got}`;
    case 'invalid_union': {
      const options = [...new Set((issue.errors ?? []).flatMap((branch) => branch.flatMap(accepted)))];
      return options.length > 0 ? `expected ${joinOr(options)}, ${got}` : `${issue.message}, ${got}`;
    }
    case 'too_big':
    case 'too_small':
      return `${bound(issue, issue.code === 'too_big')}, ${got}`;
    default:
      return issue.input === undefined || typeof issue.input === 'object' || /\bgot\b/.test(issue.message) ? issue.message : `${issue.message}, ${got}`;
  }
}

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions (`prot` → `port` is 1). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i += 1) {
    for (let j = 1; j <= b.length; j += 1) {
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j] ?? 0, (d[i - 2]?.[j - 2] ?? 0) + 1);
    }
  }
  return d[a.length]?.[b.length] ?? Math.max(a.length, b.length);
}

/** The known key nearest to `key` (case-insensitive equal, or within a third of its length), if any. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = candidate.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key, candidate);
    if (best === undefined || distance < best.distance) best = { key: candidate, distance };
  }
  return best && best.distance <= Math.max(1, Math.floor(Math.max(key.length, best.key.length) / 3)) ? best.key : undefined;
}

interface SchemaDef {
  readonly type?: string;
  readonly shape?: Record<string, { readonly def?: SchemaDef }>;
  readonly innerType?: { readonly def?: SchemaDef };
  readonly in?: { readonly def?: SchemaDef };
  readonly element?: { readonly def?: SchemaDef };
  readonly options?: ReadonlyArray<{ readonly def?: SchemaDef }>;
}

/** The keys the schema allows in the mapping at `path` (through defaults, optionals, pipes and lists). */
export function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let def: SchemaDef | undefined = (schema as unknown as { def?: SchemaDef }).def;
  const unwrap = (): void => {
    while (def && (def.innerType || def.in)) def = (def.innerType ?? def.in)?.def;
    if (def?.type === 'union') def = def.options?.find((o) => o.def?.type === 'object' || o.def?.innerType)?.def ?? def;
    while (def && (def.innerType || def.in)) def = (def.innerType ?? def.in)?.def;
  };
  for (const segment of path) {
    unwrap();
    if (def?.type === 'object' && typeof segment === 'string') def = def.shape?.[segment]?.def;
    else if (def?.type === 'array') def = def.element?.def;
    else if (def?.type === 'record') return [];
    else return [];
  }
  unwrap();
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

export interface ExplainOptions {
  readonly schema: z.ZodType;
  readonly source?: YamlSource;
  /** Settings set from the environment or a flag: dotted path → where it came from. */
  readonly overrides?: ReadonlyMap<string, string>;
}

/** Every issue of a failed parse as problems with allowed values, suggestions and file positions. */
export function explainIssues(issues: readonly RawIssue[], options: ExplainOptions): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const place = (path: readonly PropertyKey[], key?: string): Pick<ConfigProblem, 'line' | 'column'> => {
    const dotted = [...path, ...(key === undefined ? [] : [key])].map(String).join('.');
    if (options.overrides?.has(dotted)) return {};
    const pos = options.source?.locate(path, key);
    return pos ? { line: pos.line, column: pos.column } : {};
  };
  const from = (path: readonly PropertyKey[]): string => {
    const origin = options.overrides?.get(path.map(String).join('.'));
    return origin ? ` (from ${origin})` : '';
  };
  for (const issue of issues) {
    const dotted = issue.path.length ? issue.path.map(String).join('.') : '(root)';
    if (issue.code === 'unrecognized_keys') {
      const known = keysAt(options.schema, issue.path);
      for (const key of issue.keys ?? []) {
        const near = nearestKey(key, known);
        const hint = near ? `did you mean ${JSON.stringify(near)}?` : known.length > 0 ? `known keys here: ${known.join(', ')}` : 'no keys are allowed here';
        problems.push({ path: issue.path.length ? `${dotted}.${key}` : key, message: `unknown key; ${hint}`, ...place(issue.path, key) });
      }
      continue;
    }
    problems.push({ path: dotted, message: `${explain(issue)}${from(issue.path)}`, ...place(issue.path) });
  }
  // In file order, as an editor shows them; problems from the environment or flags last.
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => (a.p.line ?? Infinity) - (b.p.line ?? Infinity) || (a.p.column ?? 0) - (b.p.column ?? 0) || a.i - b.i)
    .map(({ p }) => p);
}
