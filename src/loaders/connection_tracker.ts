/**
 * connection_tracker: attach an XDP program that counts packets and bytes
 * per flow (source, destination, protocol) in a hash map with a struct key,
 * and print the biggest flows (packets, bytes, rates) every interval.
 *
 *   sudo tsx src/loaders/connection_tracker.ts veth0 [--interval 3] [--top 20] [--json]
 */
import { parsePositiveInt, parseSeconds, pollEvery, runLesson } from '../cli/lesson.js';
import { ConnTracker, connTable, flowJson, renderFlowTable } from '../lessons/connection_tracker.js';

await runLesson<{ interval: number; top: number }>({
  lesson: 'connection_tracker',
  description: 'count packets and bytes per flow (src, dst, protocol) in a BPF hash map with a struct key',
  json: true,
  options: (cmd) => cmd
    .option('--interval <seconds>', 'seconds between tables', parseSeconds, 3)
    .option('--top <n>', 'show the N biggest flows by bytes', parsePositiveInt, 20),
  async run(ctx) {
    const tracker = new ConnTracker(connTable(ctx.obj));
    await pollEvery(ctx, ctx.opts.interval, () => {
      const s = tracker.snapshot();
      for (const l of ctx.opts.json ? [flowJson(s, ctx.opts.top)] : renderFlowTable(s, ctx.opts.top)) ctx.out.line(l);
    });
  },
});
