/**
 * The shape of src/ as an executable rule (docs/architecture.md §Folders): layers only point down, no two files
 * import each other in a cycle, only the stores touch SQL, and the store writer's programs stay lean (they run on
 * the writer's thread, whose memory must not carry zod, pino or the network stacks).
 *
 * Layers, bottom to top: errors.ts, log.ts · util · protocol · store, broker · ingest, sync, server · config, sim ·
 * daemon, soak · commands · cli.ts. A file may import its own folder and any lower layer; never a higher one, never
 * another folder of its own layer. Static, type-only and dynamic (`import()`) imports all count.
 *
 * The package ships dist/ with its comments, and dist/ is built from src/: every file under src/ must read on its
 * own, so none cites the internal design notes (design.md, ../shared/) or an internal tracker number ("issue 4").
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../src');

const RANK: Readonly<Record<string, number>> = {
  errors: 0,
  log: 0,
  version: 0,
  util: 1,
  protocol: 2,
  store: 3,
  broker: 3,
  ingest: 4,
  sync: 4,
  server: 4,
  config: 5,
  sim: 5,
  app: 5,
  daemon: 6,
  soak: 6,
  commands: 7,
  cli: 8,
  index: 8,
};

interface Import {
  readonly target: string;
  /** `import type …` / `export type … from` / every specifier `type`: erased at run time. */
  readonly typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Every file under `dir`, whatever its type (the status page's HTML ships as it is). */
function allFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? allFiles(path) : [path];
  });
}

/** Citations of what is not shipped: the design notes and internal tracker numbers ("issue 4", "issues 3 and 5"). */
const INTERNAL_REFERENCE = /design\.md|\.\.\/shared\/|\/work\/shared\b|\bshared\/(?:design|seed|peers)\b|\bissues? #?\d+/i;

/** The code of a file without comments (so prose naming SQL or modules does not count). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

function importsOf(file: string): { relative: Import[]; packages: Import[] } {
  const text = code(readFileSync(file, 'utf8'));
  const found: Import[] = [];
  const statement = /(?:^|\n)\s*(import|export)\s+(type\s+)?([^;]*?)\s*from\s*'([^']+)'/g;
  let m: RegExpExecArray | null;
  while ((m = statement.exec(text)) !== null) {
    const clause = m[3] ?? '';
    const braces = /\{([^}]*)\}/.exec(clause);
    const onlyTypeSpecifiers =
      braces !== null && !/^\s*\w+\s*,/.test(clause) && (braces[1] ?? '').split(',').map((s) => s.trim()).filter(Boolean).every((s) => s.startsWith('type '));
    found.push({ target: m[4] ?? '', typeOnly: m[2] !== undefined || onlyTypeSpecifiers });
  }
  for (const side of text.matchAll(/(?:^|\n)\s*import\s+'([^']+)'/g)) found.push({ target: side[1] ?? '', typeOnly: false });
  for (const dynamic of text.matchAll(/import\(\s*'([^']+)'\s*\)/g)) found.push({ target: dynamic[1] ?? '', typeOnly: false });
  return {
    relative: found.filter((i) => i.target.startsWith('.')).map((i) => ({ ...i, target: resolve(dirname(file), i.target.replace(/\.js$/, '.ts')) })),
    packages: found.filter((i) => !i.target.startsWith('.')),
  };
}

function layerOf(file: string): string {
  const rel = relative(SRC, file);
  const top = rel.split('/')[0] ?? '';
  return top.endsWith('.ts') ? top.slice(0, -3) : top;
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const show = (f: string): string => relative(SRC, f);

describe('architecture (src/)', () => {
  it('every file belongs to a known layer', () => {
    expect(files.map(layerOf).filter((l) => RANK[l] === undefined)).toEqual([]);
  });

  it('no import runs up a layer or sideways into another folder of the same layer', () => {
    const violations: string[] = [];
    for (const [file, { relative: imports }] of graph) {
      const from = layerOf(file);
      for (const { target } of imports) {
        const to = layerOf(target);
        if (to === from) continue;
        const a = RANK[from] ?? -1;
        const b = RANK[to] ?? -1;
        if (b >= a) violations.push(`${show(file)} (${from}, ${a}) → ${show(target)} (${to}, ${b})`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('no two files import each other in a cycle (type-only and dynamic imports included)', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const stack: string[] = [];
    const visit = (file: string): void => {
      state.set(file, 'visiting');
      stack.push(file);
      for (const { target } of graph.get(file)?.relative ?? []) {
        if (!graph.has(target)) continue;
        if (state.get(target) === 'visiting') cycles.push([...stack.slice(stack.indexOf(target)), target].map(show).join(' → '));
        else if (state.get(target) === undefined) visit(target);
      }
      stack.pop();
      state.set(file, 'done');
    };
    for (const file of files) if (state.get(file) === undefined) visit(file);
    expect(cycles).toEqual([]);
  });

  it('only src/store/ and src/server/ touch SQL (prepare, pragma, better-sqlite3, SQL statements)', () => {
    const sql = /\.prepare\s*[<(]|\.pragma\s*\(|\b(SELECT\s[\s\S]{0,200}?\sFROM|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|CREATE\s+(TABLE|INDEX))\b/;
    const offenders = files
      .filter((f) => !['store', 'server'].includes(layerOf(f)))
      .filter((f) => sql.test(code(readFileSync(f, 'utf8'))) || (graph.get(f)?.packages ?? []).some((i) => i.target === 'better-sqlite3'))
      .map(show);
    expect(offenders).toEqual([]);
  });

  it("the store writer's programs load neither zod, pino, undici, aedes nor mqtt (they run on the writer's thread)", () => {
    const roots = ['store/writer-thread.ts', 'store/engine.ts', 'store/programs.ts', 'ingest/local-writes.ts', 'sync/delta-apply.ts', 'sync/push-apply.ts'].map((f) => join(SRC, f));
    const heavy = new Set(['zod', 'pino', 'undici', 'aedes', 'mqtt', 'ws', 'prom-client', 'yaml']);
    const reached = new Set<string>();
    const offenders: string[] = [];
    const walk = (file: string, path: string[]): void => {
      if (reached.has(file)) return;
      reached.add(file);
      const imports = graph.get(file);
      if (!imports) return;
      for (const p of imports.packages) if (!p.typeOnly && heavy.has(p.target)) offenders.push(`${[...path, file].map(show).join(' → ')} imports ${p.target}`);
      for (const r of imports.relative) if (!r.typeOnly) walk(r.target, [...path, file]);
    };
    for (const root of roots) walk(root, []);
    expect(offenders).toEqual([]);
    expect(reached.size).toBeGreaterThan(roots.length); // the walk followed imports
  });

  it('no file cites design.md, ../shared/ or an issue number (dist/ ships the comments; they must stand alone)', () => {
    const shipped = allFiles(SRC);
    const citations = shipped.flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, i) => (INTERNAL_REFERENCE.test(line) ? [`${show(file)}:${i + 1}: ${line.trim()}`] : [])),
    );
    expect(citations).toEqual([]);
    expect(shipped.length).toBeGreaterThan(files.length); // the walk saw the non-TypeScript files too
  });
});
