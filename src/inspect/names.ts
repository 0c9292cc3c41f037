/**
 * Names as bpftool prints them. The kernel's type tables live once, in
 * ../kinds.ts; this adds what inspecting links needs beyond them.
 */
export { progTypeName, attachTypeName, linkTypeName } from '../kinds.js';

/** enum bpf_perf_event_type: what a perf_event link is. */
export const PERF_EVENT_TYPES = ['unspec', 'uprobe', 'uretprobe', 'kprobe', 'kretprobe', 'tracepoint', 'event'] as const;

/** "tracepoint" for 5; "perf event N" beyond the table. */
export function perfEventTypeName(n: number): string {
  return PERF_EVENT_TYPES[n] ?? `perf event ${n}`;
}
