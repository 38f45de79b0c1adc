import { describe, expect, it } from 'vitest';
import { mergedStateChange, orderedVersionId } from '../../src/app/device-state.js';
import { resolveLastWriteWins } from '../../src/protocol/conflict.js';

describe('app version ids', () => {
  it('a later write inside the seed tie window carries the higher sync_id, so it wins the tie-break', () => {
    const first = orderedVersionId(1_700_000_000_000_000, 'zzzzzz');
    const second = orderedVersionId(1_700_000_000_000_001, 'AAAAAA');
    expect(second > first).toBe(true);
    const decision = resolveLastWriteWins(
      { updatedAt: 1_700_000_000_000_000, syncId: first, deleted: false },
      { updatedAt: 1_700_000_000_000_001, syncId: second, deleted: false },
    );
    expect(decision.winner).toBe('client');
  });

  it('merges the set attributes into the current state and keeps the others', () => {
    const current = { entityId: 'e-1', data: { device_id: 'lamp', state: { state: 'ON', brightness: 9 } }, state: { state: 'ON', brightness: 9 }, updatedAt: 'x', syncId: 's' };
    const { change, state } = mergedStateChange('lamp', current, { state: 'OFF' }, 1, 'v');
    expect(state).toEqual({ state: 'OFF', brightness: 9 });
    expect(change.operation).toBe('update');
    expect(change.entity_id).toBe('e-1');
  });
});
