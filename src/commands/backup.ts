/**
 * `backup FILE`: an online, consistent copy of the gateway's store, safe while the daemon runs. The CLI copies it
 * itself, from a read-only connection of its own, with SQLite's backup API (store/backup.ts): the daemon runs under
 * systemd with a read-only view of the file system, so it could not write FILE where the operator wants it, and the
 * copy must not depend on the daemon being up. FILE is created 0600 (the store holds the server tokens).
 */
import { ConfigError, GatewayError } from '../errors.js';
import { openStoreReadOnly } from '../store/device-queries.js';
import { parseCommandArgs, withUsage, UsageError } from './args.js';
import { resolveTarget } from './daemon-client.js';

const HELP = `usage: inbetweenies-gateway backup FILE [--data-dir DIR | --config FILE]

Writes a consistent copy of the gateway's store (SQLite) to FILE while the daemon keeps running: every state the
gateway had acknowledged when the copy began is in it. FILE is written whole or not at all (a temporary file beside
it, checked with PRAGMA integrity_check, then renamed), mode 0600. Restore: docs/operations.md.
  --data-dir DIR   the store's folder (default: dataDir of the config)
  --config FILE    gateway config (default /etc/inbetweenies-gateway/gateway.yaml if present)
  --json           {"file","store","bytes","pages"} on success
Exit status: 0 written, 1 no store or the copy failed, 2 bad usage or configuration.`;

export async function backupCommand(argv: string[]): Promise<number> {
  return withUsage(HELP, argv, async () => {
    const { values, positionals } = parseCommandArgs(argv, { 'data-dir': { type: 'string' }, config: { type: 'string' }, json: { type: 'boolean' } }, true);
    const [file, ...extra] = positionals;
    if (file === undefined || extra.length > 0) throw new UsageError(`expected one FILE to write, got ${positionals.length}`);
    let dataDir = values['data-dir'];
    if (dataDir === undefined) {
      try {
        dataDir = resolveTarget({ config: values.config }).config.dataDir;
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        process.stderr.write(`${err.message}\n(hint: run with sudo to read the config, or pass --data-dir DIR)\n`);
        return 2;
      }
    }
    let reader;
    try {
      reader = openStoreReadOnly(dataDir);
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    try {
      const copy = await reader.backup(file);
      process.stdout.write(
        values.json
          ? `${JSON.stringify({ file: copy.path, store: reader.path, bytes: copy.bytes, pages: copy.pages })}\n`
          : `backed up store ${reader.path} to ${copy.path} (${copy.bytes} bytes, integrity ok)\n`,
      );
      return 0;
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      process.stderr.write(`${err.message}\n`);
      return 1;
    } finally {
      reader.close();
    }
  });
}
