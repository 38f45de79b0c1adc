/**
 * `conflicts`: the latest entries of the conflict log — every conflict the server reported and every rejected
 * change — with both versions, newest first; from the running daemon (GET /api/conflicts) or the store, found as
 * `status` finds them (source.ts).
 */
import { MAX_CONFLICTS_READ } from '../store/index.js';
import { intFlag, parseCommandArgs, withUsage } from './args.js';
import { askDaemon } from './daemon-client.js';
import { describeSource, findSource, SOURCE_HELP, SOURCE_OPTIONS, type Source } from './source.js';
import { ConflictListView } from './status-view.js';

const HELP = `usage: inbetweenies-gateway conflicts [--limit N] [--config FILE] [--http-port N] [--data-dir DIR] [--json]

Lists the latest conflicts (a change made here and one made elsewhere to the same entity; which one won) and the
changes the server rejected, newest first, each with the server's version and the gateway's. The first line says
what was read: "daemon at URL (pid N)" or "store PATH (daemon not running)" (with --json, on stderr).
  --limit N        how many (default 20, at most ${MAX_CONFLICTS_READ})
${SOURCE_HELP}
  --json           one JSON array of {id, recordedAt, entityType, entityId, type, reason, resolution,
                   serverVersion, clientVersion}
Exit status: 0 ok, 1 neither a daemon nor a store (or the daemon failed to answer), 2 bad usage or configuration.`;

/** A version printed on one line at most this long (--json has it whole). */
const VERSION_CHARS = 400;

export async function conflictsCommand(argv: string[]): Promise<number> {
  return withUsage(HELP, argv, async () => {
    const { values } = parseCommandArgs(argv, { ...SOURCE_OPTIONS, json: { type: 'boolean' }, limit: { type: 'string' } });
    const limit = intFlag('limit', values.limit, 1, MAX_CONFLICTS_READ) ?? 20;
    const source = await findSource(values);
    if (typeof source === 'number') return source;
    const entries = await read(source, limit);
    if (entries === undefined) return 1;
    const head = describeSource(source);
    if (values.json) {
      process.stderr.write(`${head}\n`);
      process.stdout.write(`${JSON.stringify(entries)}\n`);
      return 0;
    }
    const text = entries.length === 0 ? 'no conflicts recorded' : entries.map(formatEntry).join('\n');
    process.stdout.write(`${head}\n${text}\n`);
    return 0;
  });
}

async function read(source: Source, limit: number): Promise<ConflictListView | undefined> {
  if (source.kind === 'store') {
    try {
      return source.reader.conflicts.recent(limit);
    } finally {
      source.reader.close();
    }
  }
  const answer = await askDaemon(source.url, `/api/conflicts?limit=${limit}`, { token: source.token, timeoutMs: 10_000 });
  const parsed = ConflictListView.safeParse(answer.body);
  if (answer.status !== 200 || !parsed.success) {
    process.stderr.write(`unexpected GET /api/conflicts answer from ${source.url} (${answer.status}): ${parsed.error?.issues[0]?.message ?? JSON.stringify(answer.body).slice(0, 200)}\n`);
    return undefined;
  }
  return parsed.data;
}

function formatEntry(c: ConflictListView[number]): string {
  const version = (v: unknown): string => {
    const text = v === null || v === undefined ? '-' : JSON.stringify(v);
    return text.length > VERSION_CHARS ? `${text.slice(0, VERSION_CHARS - 1)}…` : text;
  };
  return [
    `${new Date(c.recordedAt).toISOString()}  ${c.type}  ${c.entityType} ${c.entityId}  → ${c.resolution}`,
    `  reason:  ${c.reason}`,
    `  server:  ${version(c.serverVersion)}`,
    `  gateway: ${version(c.clientVersion)}`,
  ].join('\n');
}
