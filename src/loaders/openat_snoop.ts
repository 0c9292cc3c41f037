/**
 * openat_snoop: trace every openat(2) on the machine (seed 004's CO-RE
 * tracer): two tracepoints, syscalls/sys_enter_openat and sys_exit_openat,
 * stream pid, command, file name and result through a ring buffer, filtered
 * in the kernel by --pid and --comm. One opensnoop-like line per call (or
 * NDJSON with --json); at exit: events, unreadable names, lost.
 * --verbose shows libbpf's log, with its CO-RE relocations.
 *
 *   sudo npx tsx src/loaders/openat_snoop.ts [--pid N] [--comm NAME] [--json] [--count N]
 */
import { performance } from 'node:perf_hooks';
import { runLesson } from '../cli/lesson.js';
import {
  addSnoopOptions, attachSnoop, configureSnoop, decodeEvent, eventJson, formatEvent, formatSummary, HEADER, openSnoop,
  snoopSummary, type Snoop, type SnoopOptions,
} from '../lessons/openat_snoop.js';

await runLesson<SnoopOptions, { snoop: Snoop; start: number }>({
  lesson: 'openat_snoop',
  description: 'opensnoop-like: every openat(2) with pid, command, file name and result (tracepoints, CO-RE, ring buffer)',
  json: true,
  iface: false,
  options: addSnoopOptions,
  configure: configureSnoop,
  attach: attachSnoop,
  async run(ctx) {
    const snoop = openSnoop(ctx.obj);
    ctx.defer(() => snoop.reader.close());
    let reported = 0;
    const t = setInterval(() => {
      const { lost } = snoop.counters();
      if (lost > reported) ctx.log(`warning: ${lost - reported} events lost (ring full; try a larger --ring-size)`);
      reported = lost;
    }, 1000);
    t.unref();
    ctx.defer(() => clearInterval(t));
    const limit = ctx.opts.count ?? Infinity;
    if (!ctx.opts.json) ctx.out.line(HEADER);
    const start = performance.now();
    let t0: bigint | undefined;
    let n = 0;
    await snoop.reader.consume((ev) => {
      const r = decodeEvent(ev);
      t0 ??= r.tsNs;
      ctx.out.line(ctx.opts.json ? eventJson(r) : formatEvent(r, t0));
      if (++n >= limit) snoop.reader.close();
    }, { signal: ctx.signal });
    return { snoop, start };
  },
  summary: (ctx, { snoop, start }) => ctx.log(formatSummary(snoopSummary(snoop, start))),
});
