/**
 * The subset of Home Assistant value templates (Jinja) that discovery configs use in practice (HA docs "MQTT
 * discovery", "Templating"): `{{ value }}`, `{{ value_json.a.b }}`, `{{ value_json['a'] }}`, `{{ value_json.a[0] }}`,
 * optionally piped through `float`, `int`, `round(n)`, `lower`, `upper`, `string`, `bool`, `default(x)`. Anything else
 * is not evaluated: compileTemplate returns undefined and the adapter counts the message as `unsupported_template`.
 * Pure functions; no eval.
 */

export type TemplateInput = { readonly text: string; readonly json: unknown };
export type TemplateResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly detail: string };
export type CompiledTemplate = (input: TemplateInput) => TemplateResult;

type Step = string | number;
type Filter = (value: unknown) => unknown;

const MISSING = Symbol('missing');
const EXPR_RE = /^\{\{-?\s*(.*?)\s*-?\}\}$/s;
const PATH_RE = /^value_json((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\s*(?:\d+|'[^']*'|"[^"]*")\s*\])*)$/;
const STEP_RE = /\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*(\d+|'[^']*'|"[^"]*")\s*\]/g;

function parsePath(text: string): Step[] | undefined {
  const m = PATH_RE.exec(text);
  if (!m) return undefined;
  const steps: Step[] = [];
  for (const s of (m[1] ?? '').matchAll(STEP_RE)) {
    if (s[1] !== undefined) steps.push(s[1]);
    else if (s[2] !== undefined) steps.push(/^\d+$/.test(s[2]) ? Number(s[2]) : s[2].slice(1, -1));
  }
  return steps;
}

function walk(json: unknown, steps: readonly Step[]): unknown {
  let node: unknown = json;
  for (const step of steps) {
    if (typeof step === 'number' ? !Array.isArray(node) : typeof node !== 'object' || node === null || Array.isArray(node)) return MISSING;
    const next: unknown = typeof step === 'number' ? (node as unknown[])[step] : Object.prototype.hasOwnProperty.call(node, step) ? (node as Record<string, unknown>)[step] : MISSING;
    if (next === undefined) return MISSING;
    node = next;
  }
  return node;
}

function literal(text: string): unknown {
  const t = text.trim();
  if (/^'[^']*'$|^"[^"]*"$/.test(t)) return t.slice(1, -1);
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  if (t === 'true' || t === 'True') return true;
  if (t === 'false' || t === 'False') return false;
  if (t === 'none' || t === 'None') return null;
  return MISSING;
}

function toNumber(value: unknown): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value.trim()) : typeof value === 'boolean' ? Number(value) : NaN;
  return Number.isFinite(n) ? n : NaN;
}

function compileFilter(text: string): Filter | undefined {
  const m = /^([a-z_]+)\s*(?:\((.*)\))?$/s.exec(text.trim());
  if (!m) return undefined;
  const [, name, arg] = m;
  if (name === 'float' || name === 'int') {
    const fallback = arg === undefined ? 0 : literal(arg);
    if (fallback === MISSING) return undefined;
    return (v) => {
      const n = toNumber(v);
      if (Number.isNaN(n)) return fallback;
      return name === 'int' ? Math.trunc(n) : n;
    };
  }
  if (name === 'round') {
    const digits = arg === undefined || arg.trim() === '' ? 0 : Number(arg.trim());
    if (!Number.isInteger(digits) || digits < 0 || digits > 10) return undefined;
    return (v) => {
      const n = toNumber(v);
      return Number.isNaN(n) ? v : Math.round(n * 10 ** digits) / 10 ** digits;
    };
  }
  if (name === 'lower' || name === 'upper' || name === 'string') {
    return (v) => {
      const s = typeof v === 'string' ? v : JSON.stringify(v) ?? '';
      return name === 'lower' ? s.toLowerCase() : name === 'upper' ? s.toUpperCase() : s;
    };
  }
  if (name === 'bool') return (v) => v === true || (typeof v === 'string' && ['true', 'on', 'yes', '1'].includes(v.toLowerCase())) || v === 1;
  if ((name === 'default' || name === 'd') && arg !== undefined) {
    const fallback = literal(arg);
    return fallback === MISSING ? undefined : (v) => (v === MISSING ? fallback : v);
  }
  return undefined;
}

/** Splits on `|` outside quotes and brackets. */
function splitPipes(expr: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let current = '';
  for (const ch of expr) {
    if (quote) quote = ch === quote ? undefined : quote;
    else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '(' || ch === '[') depth += 1;
    else if (ch === ')' || ch === ']') depth -= 1;
    else if (ch === '|' && depth === 0) {
      parts.push(current);
      current = '';
      continue;
    }
    current += ch;
  }
  parts.push(current);
  return parts.map((p) => p.trim());
}

/** Compiles a template; undefined when it uses more Jinja than this subset. */
export function compileTemplate(template: string): CompiledTemplate | undefined {
  if (template.length > 1000) return undefined;
  const m = EXPR_RE.exec(template.trim());
  if (!m || m[1] === undefined || /\{\{|\}\}|\{%/.test(m[1])) return undefined;
  const [head = '', ...filterTexts] = splitPipes(m[1]);
  const filters = filterTexts.map(compileFilter);
  if (filters.some((f) => f === undefined)) return undefined;
  const path = head === 'value' ? undefined : parsePath(head);
  if (head !== 'value' && path === undefined) return undefined;
  return (input) => {
    let value: unknown;
    if (path === undefined) value = input.text;
    else value = input.json === MISSING || input.json === undefined ? MISSING : walk(input.json, path);
    for (const f of filters) value = (f as Filter)(value);
    if (value === MISSING) return { ok: false, detail: path === undefined ? 'no value' : `value_json has no ${head.slice('value_json'.length)}` };
    return { ok: true, value };
  };
}

/** Renders a `cmd_tpl` of the form `… {{ value }} …` (plain text around one `{{ value }}`); undefined otherwise. */
export function compileCommandTemplate(template: string): ((value: string) => string) | undefined {
  const parts = template.split(/\{\{-?\s*value\s*-?\}\}/);
  if (parts.some((p) => /\{\{|\{%/.test(p))) return undefined;
  return (value) => parts.join(value);
}
