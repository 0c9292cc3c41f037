/**
 * sock_filter: a socket filter (BPF_PROG_TYPE_SOCKET_FILTER) on a raw
 * AF_PACKET socket bound to an interface, tcpdump's way of capturing: the
 * kernel program keeps only the packets the `allow` map lets through
 * (protocol, port) and counts the rest by reason; this loader reads the
 * socket on Node's event loop and prints what it receives.
 *
 *   sudo npx tsx src/loaders/sock_filter.ts veth0 --allow tcp:80 --allow icmp
 *   sudo npx tsx src/loaders/sock_filter.ts veth0 --allow udp:53 --json --count 10
 */
import { InvalidArgumentError } from 'commander';
import { parsePositiveInt, parseSeconds, runLesson } from '../cli/lesson.js';
import { PacketSocket } from '../attach/socket.js';
import { FilterTable, PROGRAM, formatPacket, formatRule, formatStats, parseRule, summarize, type SfRule } from '../lessons/sock_filter.js';

interface Opts {
  allow?: SfRule[];
  count?: number;
  stats?: number;
}

function collect(v: string, prev: SfRule[] | undefined): SfRule[] {
  try {
    return [...(prev ?? []), parseRule(v)];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

await runLesson<Opts, FilterTable>({
  lesson: 'sock_filter',
  description: 'a socket filter on a raw packet socket: receive only the protocols and ports a map allows, count the rest',
  json: true,
  xdp: false,
  options: (cmd) => cmd
    .option('--allow <rule>', 'let these packets through: tcp:80, udp:53, icmp, udp (every UDP packet), 47 (repeatable)', collect)
    .option('--count <n>', 'stop after receiving this many packets', parsePositiveInt)
    .option('--stats <seconds>', 'print the filter counters this often (on stderr)', parseSeconds),
  attach(ctx) {
    const { obj, iface, opts, log } = ctx;
    const table = FilterTable.fromObject(obj);
    for (const r of opts.allow ?? []) log(`allow ${table.allow(r)}`);
    if (!opts.allow?.length) log('no --allow rule: every packet is refused (and counted)');
    // The filter is attached before the socket is bound: no packet is queued unfiltered.
    const sock = PacketSocket.open(iface.index, { filter: obj.program(PROGRAM) });
    ctx.defer(() => sock.close());
    log(`socket filter ${PROGRAM} on a packet socket bound to ${iface.name}; rules: ${table.rules().map(formatRule).join(', ') || 'none'}`);
    log('Ctrl-C to stop');
    let n = 0;
    sock.onPacket((p) => {
      if (ctx.signal.aborted) return;
      const s = summarize(p);
      ctx.out.line(ctx.opts.json ? JSON.stringify(s) : formatPacket(s));
      if (opts.count !== undefined && ++n >= opts.count) ctx.stop();
    });
  },
  async run(ctx) {
    const table = FilterTable.fromObject(ctx.obj);
    let t: NodeJS.Timeout | undefined;
    if (ctx.opts.stats) t = setInterval(() => ctx.log(formatStats(table.stats())), ctx.opts.stats * 1000);
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) resolve();
      ctx.signal.addEventListener('abort', () => resolve());
    });
    clearInterval(t);
    return table;
  },
  summary: (ctx, table) => ctx.log(formatStats(table.stats())),
});
