/**
 * perf_vs_ringbuf: the same event through a perf buffer and a ring buffer,
 * side by side. Two programs on one syscall tracepoint (every syscall by
 * default, this loader's own excepted) send a struct pvr_event each, one
 * with bpf_perf_event_output (a ring per CPU), one with
 * bpf_ringbuf_reserve/submit (one shared ring); both readers run on the
 * event loop. Every second: events read, lost and out of time order on
 * each path; at exit, the totals.
 *
 *   sudo npx tsx src/loaders/perf_vs_ringbuf.ts [--pid N] [--tracepoint cat:name] [--perf-pages N] [--ring-size B]
 */
import { performance } from 'node:perf_hooks';
import { runLesson } from '../cli/lesson.js';
import {
  addPvrOptions, attachPvr, configurePvr, describeMemory, formatPvrSummary, formatSecond, openPvr, type PvrOptions, type PvrReaders,
} from '../lessons/perf_vs_ringbuf.js';

let readers: PvrReaders | undefined;

await runLesson<PvrOptions, { r: PvrReaders; start: number }>({
  lesson: 'perf_vs_ringbuf',
  description: 'the same events through a perf buffer (per-CPU rings) and a ring buffer (one shared ring): counts, losses, ordering',
  iface: false,
  options: addPvrOptions,
  configure: (obj, o) => configurePvr(obj, o),
  attach(ctx) {
    // Readers first: events sent before a perf ring is in the map would fail.
    const r = openPvr(ctx.obj, ctx.opts);
    readers = r;
    // Runs after both programs are detached: whatever they sent is read (or was lost) before the summary.
    ctx.defer(() => {
      r.perf.read((e) => r.perfOrder.add(e));
      r.ring.read((e) => r.ringOrder.add(e));
      r.close();
    });
    const [perf, ring] = attachPvr(ctx.obj, ctx.opts.tracepoint);
    ctx.own(perf);
    ctx.own(ring);
    const filter = ctx.opts.pid !== undefined ? `pid ${ctx.opts.pid}` : `every process but this loader (${process.pid})`;
    ctx.log(`attached ${perf.description} and ${ring.description}, filter: ${filter}`);
    ctx.log(`memory: ${describeMemory(r)}; perf wakes every ${ctx.opts.wakeupEvents} sample(s) per CPU, ring buffer ${ctx.opts.rbNoWakeup ? 'never (drained every 100 ms)' : 'when the reader is caught up'}; Ctrl-C to stop`);
  },
  async run(ctx) {
    const r = readers!;
    const start = performance.now();
    let last = { perf: 0, perfLost: 0, perfOoo: 0, ring: 0, ringLost: 0, ringOoo: 0 };
    const t = setInterval(() => {
      const now = {
        perf: r.perfOrder.events, perfLost: r.perf.lost, perfOoo: r.perfOrder.outOfOrder,
        ring: r.ringOrder.events, ringLost: r.counters().rb_failed, ringOoo: r.ringOrder.outOfOrder,
      };
      ctx.out.line(formatSecond(
        { events: now.perf - last.perf, lost: now.perfLost - last.perfLost, outOfOrder: now.perfOoo - last.perfOoo },
        { events: now.ring - last.ring, lost: now.ringLost - last.ringLost, outOfOrder: now.ringOoo - last.ringOoo },
      ));
      last = now;
    }, 1000);
    ctx.defer(() => clearInterval(t));
    await Promise.all([
      r.perf.consume((e) => r.perfOrder.add(e), { signal: ctx.signal }),
      r.ring.consume((e) => r.ringOrder.add(e), { signal: ctx.signal, intervalMs: ctx.opts.rbNoWakeup ? 100 : undefined }),
    ]);
    clearInterval(t);
    return { r, start };
  },
  summary: (ctx, { r, start }) => ctx.log(formatPvrSummary(r, (performance.now() - start) / 1000)),
});
