/**
 * sourceip: attach an XDP program that sends the source and destination of
 * every IPv4 and IPv6 packet to user space through a ring buffer, and print
 * one line per packet (IPv6 in RFC 5952 form; NDJSON with --json). At exit:
 * packets and bytes per source, and the kernel's counts (lost events too).
 *
 *   sudo npx tsx src/loaders/sourceip.ts veth0 [--count 10] [--json]
 */
import { parsePositiveInt, runLesson } from '../cli/lesson.js';
import {
  formatPacket, formatSummary, openSourceCapture, packetJson, SourceTable, toPacket, WallClock, warnOnLosses,
  type SourceCapture,
} from '../lessons/sourceip.js';

await runLesson<{ count?: number }, { capture: SourceCapture; table: SourceTable }>({
  lesson: 'sourceip',
  description: 'where packets come from: source and destination of every IPv4 and IPv6 packet, through a ring buffer',
  json: true,
  options: (cmd) => cmd.option('--count <n>', 'stop after n packets', parsePositiveInt),
  async run(ctx) {
    const capture = openSourceCapture(ctx.obj);
    ctx.defer(() => capture.reader.close());
    warnOnLosses(ctx, capture);
    const clock = new WallClock();
    const table = new SourceTable();
    const format = ctx.opts.json ? packetJson : formatPacket;
    const limit = ctx.opts.count ?? Infinity;
    let n = 0;
    await capture.reader.consume((ev) => {
      const p = toPacket(ev, clock);
      table.add(p);
      ctx.out.line(format(p));
      if (++n >= limit) capture.reader.close();
    }, { signal: ctx.signal });
    return { capture, table };
  },
  // Detached by now, so the kernel's counters are final; the object is still open to read them.
  summary: (ctx, { capture, table }) => {
    for (const l of formatSummary(table.rows(), capture.counters())) ctx.log(l);
  },
});
