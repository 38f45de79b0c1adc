/**
 * Devices per ingest adapter, for the `devices{adapter}` gauge (metrics-extra.ts): device ids counted by the adapter
 * that speaks for them (`other`: one no enabled adapter claims); every enabled adapter is listed, at 0 when it has none.
 */
export function countByAdapter(
  ids: readonly string[],
  router: { adapters(): ReadonlyArray<{ readonly name: string }>; adapterForDevice(id: string): { readonly name: string } | undefined },
): Record<string, number> {
  const counts: Record<string, number> = { other: 0 };
  for (const adapter of router.adapters()) counts[adapter.name] = 0;
  for (const id of ids) {
    const name = router.adapterForDevice(id)?.name ?? 'other';
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}
