/**
 * A real headless browser for the status page: Debian's Chromium (`/usr/bin/chromium`, installed by
 * scripts/test.sh) driven by playwright-core through its executable path. A missing Chromium fails the test, it never
 * skips. The machine's network is closed, so Chromium's own background traffic (updates, sync, QUIC probes) is off,
 * and each launch gets a fresh profile.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface TestBrowser {
  readonly context: BrowserContext;
  /** A new page at `width`×`height` whose console errors and page errors are collected. */
  page(options?: { width?: number; height?: number }): Promise<{ page: Page; errors: string[] }>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does) or set CHROMIUM_PATH`);
  const profile = mkdtempSync(join(tmpdir(), 'ib-chromium-'));
  // A persistent context is how playwright takes a profile folder of our own (--user-data-dir).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    page: async (options = {}) => {
      const page = await context.newPage();
      await page.setViewportSize({ width: options.width ?? 1024, height: options.height ?? 768 });
      const errors: string[] = [];
      page.on('console', (m: ConsoleMessage) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
      return { page, errors };
    },
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
