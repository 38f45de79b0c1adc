/** Small helpers for adapter parse tests. */
import { expect } from 'vitest';
import type { IngestAdapter, LocalUpdate, ParseResult } from '../../src/ingest/adapter.js';

export const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
export const text = (value: string): Buffer => Buffer.from(value);

export function updates(result: ParseResult | undefined): readonly LocalUpdate[] {
  expect(result).toBeDefined();
  if (!result?.ok) throw new Error(`expected ok, got ${JSON.stringify(result)}`);
  return result.updates;
}

export function rejection(result: ParseResult | undefined): string {
  if (result === undefined || result.ok) throw new Error(`expected a rejection, got ${JSON.stringify(result)}`);
  return result.reason;
}

export function commandTopics(adapter: IngestAdapter, deviceId: string, attributes: Record<string, unknown>): Array<[string, string]> {
  return adapter.commandsFor({ deviceId, attributes }).map((m) => [m.topic, m.payload.toString()]);
}
