/**
 * rcv_latency: the time each received packet spends in the kernel's receive
 * path, as a log2 histogram printed every interval the way bpftrace's hist()
 * prints it (--json: the buckets). The seed's kprobe/kretprobe on ip_rcv
 * where the kernel has kprobes; the tracepoints net:netif_receive_skb →
 * skb:consume_skb/kfree_skb everywhere. Says which it uses.
 *
 *   sudo npx tsx src/loaders/rcv_latency.ts [--interval 1] [--iface veth0] [--json] [--probe auto|kprobe|tracepoint]
 */
import { parseSeconds, pollEvery, runLesson } from '../cli/lesson.js';
import {
  addOptions, attachProbes, configureFilter, HistDelta, histMap, intervalJson, readHist, renderInterval, type RcvLatencyOptions,
} from '../lessons/rcv_latency.js';

await runLesson<RcvLatencyOptions>({
  lesson: 'rcv_latency',
  description: "receive-path latency per packet as a log2 histogram (bpftrace's hist()), every interval",
  json: true,
  iface: false,
  options: (cmd) => addOptions(cmd, parseSeconds),
  configure: configureFilter,
  attach: attachProbes,
  async run(ctx) {
    const map = histMap(ctx.obj);
    const delta = new HistDelta(() => readHist(map));
    await pollEvery(ctx, ctx.opts.interval, () => {
      const d = delta.next();
      const now = new Date();
      if (ctx.opts.json) ctx.out.line(intervalJson(d, now));
      else for (const l of [...renderInterval(d, now), '']) ctx.out.line(l);
    });
  },
});
