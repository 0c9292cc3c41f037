/**
 * packet_sniff: attach an XDP program that streams every IPv4 packet's
 * addresses, ports, protocol, size, TTL, time and flags (FRAG, LOW_TTL, SYN,
 * FIN, RST) through a 16 MiB ring buffer and counts packets per class in a
 * per-CPU array; print a statistics block every --stats seconds, one line per
 * packet with -v, and the final statistics at exit.
 *
 *   sudo npx tsx src/loaders/packet_sniff.ts veth0 [--stats 5] [-v] [--json]
 */
import { runLesson } from '../cli/lesson.js';
import {
  addSniffOptions, formatPacket, openSniffRing, packetJson, renderStats, statsJson, statsMap, StatsReader, WallClock, type PacketDataValue, type SniffOptions,
} from '../lessons/packet_sniff.js';

await runLesson<SniffOptions, { stats: StatsReader; events: () => number }>({
  lesson: 'packet_sniff',
  description: 'capture IPv4 packets through a ring buffer: statistics every --stats seconds, one line per packet with -v',
  json: true,
  options: addSniffOptions,
  async run(ctx) {
    const map = statsMap(ctx.obj);
    const stats = new StatsReader(map);
    const ring = openSniffRing(ctx.obj, map);
    ctx.defer(() => ring.close());
    const clock = new WallClock();
    const { json, verbose } = ctx.opts;
    const print = () => {
      clock.refresh();
      const s = stats.next(ring.consumed);
      for (const l of json ? [statsJson(s)] : renderStats(s)) ctx.out.line(l);
    };
    const t = setInterval(print, ctx.opts.stats * 1000);
    ctx.defer(() => clearInterval(t));
    // Woken by the ring's fd when the kernel commits records: no busy loop.
    const onPacket = verbose ? (e: PacketDataValue) => ctx.out.line(json ? packetJson(e, clock) : formatPacket(e, clock)) : () => {};
    await ring.consume(onPacket, { signal: ctx.signal });
    ring.read(onPacket); // what the kernel committed before the stop
    return { stats, events: () => ring.consumed };
  },
  // Detached by now, so the counters are final; the object is still open to read them. Output has
  // been flushed and the process exits right after, so this writes stdout directly (synchronous
  // for files and pipes on Linux).
  summary(ctx, { stats, events }) {
    if (ctx.out.closed) return;
    const s = stats.final(events());
    process.stdout.write(`${(ctx.opts.json ? [statsJson(s, 'summary')] : renderStats(s, 'final statistics')).join('\n')}\n`);
  },
});
