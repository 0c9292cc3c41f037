/**
 * connection_tracker: attach an XDP program that counts packets and bytes
 * per flow (source, destination, protocol) in a hash map with a struct key,
 * and print the biggest flows (packets, bytes, rates) every interval.
 *
 *   sudo npx tsx src/loaders/connection_tracker.ts veth0 [--interval 3] [--top 20] [--max-flows 65536] [--json]
 *
 * When the table is full, packets of new flows are not tracked: the kernel
 * counts them, and every table (and JSON line) says how many.
 */
import { parsePositiveInt, parseSeconds, pollEvery, runLesson } from '../cli/lesson.js';
import { CONN_TABLE_MAP, CONN_TABLE_SIZE, ConnTracker, connTable, flowJson, renderFlowTable, untrackedCounter } from '../lessons/connection_tracker.js';

await runLesson<{ interval: number; top: number; maxFlows: number }>({
  lesson: 'connection_tracker',
  description: 'count packets and bytes per flow (src, dst, protocol) in a BPF hash map with a struct key',
  json: true,
  options: (cmd) => cmd
    .option('--interval <seconds>', 'seconds between tables', parseSeconds, 3)
    .option('--top <n>', 'show the N biggest flows by bytes', parsePositiveInt, 20)
    .option('--max-flows <n>', 'size of the flow table (packets of new flows beyond it are counted as untracked)', parsePositiveInt, CONN_TABLE_SIZE),
  configure: (obj, opts) => { if (opts.maxFlows !== CONN_TABLE_SIZE) obj.setMaxEntries(CONN_TABLE_MAP, opts.maxFlows); },
  async run(ctx) {
    const tracker = new ConnTracker(connTable(ctx.obj), untrackedCounter(ctx.obj));
    await pollEvery(ctx, ctx.opts.interval, () => {
      const s = tracker.snapshot();
      for (const l of ctx.opts.json ? [flowJson(s, ctx.opts.top)] : renderFlowTable(s, ctx.opts.top)) ctx.out.line(l);
    });
  },
});
