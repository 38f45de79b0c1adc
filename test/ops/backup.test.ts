/**
 * `backup FILE`: an online, consistent copy of the store while the daemon runs and a device keeps publishing. The
 * built CLI copies from its own read connection; the copy is checked with SQLite (integrity_check), holds every state
 * the broker had acknowledged (PUBACK) before the backup began, is one self-contained file of mode 0600, and restores
 * as operations.md says (stop, copy back, start).
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, assertBuilt } from '../helpers/daemon-process.js';
import { fastSync, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { openStoreFile } from '../helpers/store-file.js';

const root = mkdtempSync(join(tmpdir(), 'ib-backup-'));
let gateway: TestGateway | undefined;
afterAll(async () => {
  await gateway?.close();
  rmSync(root, { recursive: true, force: true });
});

/** Runs the CLI without blocking this process (the daemon under test runs in it). */
function cliAsync(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => proc.once('exit', (code) => resolve({ code, stdout, stderr })));
}

const statesIn = (file: string): Set<string> => {
  const db = openStoreFile(file);
  try {
    return new Set(db.prepare<[], { entity_id: string }>("SELECT entity_id FROM entities WHERE entity_type = 'entity_state'").all().map((r) => r.entity_id));
  } finally {
    db.close();
  }
};

describe('backup FILE', () => {
  it('copies the store online while a device publishes: consistent, every PUBACKed state in it, 0600, and it restores', async () => {
    assertBuilt();
    const dataDir = join(root, 'gw');
    // Every message names a new device: above the default 100 new devices a minute per identity.
    gateway = await startTestGateway({ dataDir, tune: (c) => fastSync({ ...c, ingest: { ...c.ingest, deviceLimits: { newPerMinute: 100_000, total: 100_000 } } }) });
    const device = await gateway.connect('busy-device');
    let acked = 0;
    let stop = false;
    // One new device state after another, each waiting for its PUBACK (the state is then on disk).
    const publishing = (async () => {
      while (!stop) {
        await device.publishAsync(`devices/dev-${acked}/state`, JSON.stringify({ n: acked, pad: 'x'.repeat(200) }), { qos: 1 });
        acked += 1;
      }
    })();
    while (acked < 200) await new Promise((r) => setTimeout(r, 10));

    const file = join(root, 'gateway-backup.db');
    const ackedBefore = acked;
    const result = await cliAsync(['backup', file, '--data-dir', dataDir]);
    const ackedDuring = acked - ackedBefore;
    stop = true;
    await publishing;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^backed up store ${join(dataDir, 'gateway.db')} to ${file} \\(\\d+ bytes, integrity ok\\)\\n$`));
    expect(ackedDuring).toBeGreaterThan(0); // the device kept publishing while the copy was taken

    expect(statSync(file).mode & 0o777).toBe(0o600);
    const copy = openStoreFile(file);
    try {
      expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(copy.pragma('journal_mode', { simple: true })).toBe('delete'); // one self-contained file
    } finally {
      copy.close();
    }
    const inCopy = statesIn(file);
    const missing = Array.from({ length: ackedBefore }, (_, i) => `dev-${i}`).filter((id) => !inCopy.has(id));
    expect(missing).toEqual([]);

    // Restore (docs/operations.md): stop, copy back, start.
    await gateway.close();
    gateway = undefined;
    for (const suffix of ['-wal', '-shm']) rmSync(join(dataDir, `gateway.db${suffix}`), { force: true });
    copyFileSync(file, join(dataDir, 'gateway.db'));
    gateway = await startTestGateway({ dataDir });
    const restored = new Set(gateway.daemon.store?.entities.devices().map((d) => d.id));
    expect([...inCopy].filter((id) => !restored.has(id))).toEqual([]);
    expect(restored.size).toBe(inCopy.size);
  });

  it('says why when there is nothing to copy or nowhere to write, and leaves nothing behind', () => {
    assertBuilt();
    const none = spawnSync(process.execPath, [CLI, 'backup', join(root, 'x.db'), '--data-dir', join(root, 'empty')], { encoding: 'utf8' });
    expect(none.status).toBe(1);
    expect(none.stderr).toContain(`no gateway store at ${join(root, 'empty', 'gateway.db')}`);
    writeFileSync(join(root, 'not-a-dir'), '');
    const nowhere = spawnSync(process.execPath, [CLI, 'backup', join(root, 'not-a-dir', 'x.db'), '--data-dir', join(root, 'gw')], { encoding: 'utf8' });
    expect(nowhere.status).toBe(1);
    expect(nowhere.stderr).toMatch(/cannot create .*not-a-dir\/x\.db\.tmp-/);
    expect(spawnSync(process.execPath, [CLI, 'backup'], { encoding: 'utf8' }).status).toBe(2);
  });
});
