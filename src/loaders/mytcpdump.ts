/**
 * mytcpdump: attach an XDP program that streams one event per IPv4 packet
 * (protocol, addresses, ports, length) through a BPF ring buffer, filtered
 * in the kernel, and print one line per packet (or NDJSON with --json).
 * At exit: events seen, events lost (ring full), and the rate.
 *
 *   sudo npx tsx src/loaders/mytcpdump.ts veth0 [--proto tcp] [--host 10.0.0.1] [--port 80] [--count 10] [--json]
 */
import { performance } from 'node:perf_hooks';
import { runLesson } from '../cli/lesson.js';
import {
  addCaptureOptions, attachCapture, captureSummary, eventJson, formatEvent, formatSummary, HEADER, openCapture,
  warnOnLosses, EVENTS_MAP, type Capture, type CaptureOptions,
} from '../lessons/mytcpdump.js';

await runLesson<CaptureOptions, { capture: Capture; start: number }>({
  lesson: 'mytcpdump',
  description: 'tcpdump-like: one line per IPv4 packet, filtered in the kernel, streamed through a ring buffer',
  json: true,
  options: addCaptureOptions,
  configure: (obj, opts) => obj.setMaxEntries(EVENTS_MAP, opts.ringSize),
  attach: attachCapture,
  async run(ctx) {
    const capture = openCapture(ctx.obj);
    ctx.defer(() => capture.reader.close());
    warnOnLosses(ctx, capture);
    const format = ctx.opts.json ? eventJson : formatEvent;
    const limit = ctx.opts.count ?? Infinity;
    if (!ctx.opts.json) ctx.out.line(HEADER);
    const start = performance.now();
    let n = 0;
    await capture.reader.consume((ev) => {
      ctx.out.line(format(ev));
      if (++n >= limit) capture.reader.close();
    }, { signal: ctx.signal });
    return { capture, start };
  },
  // Detached by now, so the kernel's counters are final; the object is still open to read them.
  summary: (ctx, { capture, start }) => ctx.log(formatSummary(captureSummary(capture, start))),
});
