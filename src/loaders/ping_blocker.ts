/**
 * ping_blocker: attach an XDP program that reports every ICMP packet through
 * a ring buffer and drops those from or to a blocked address; print one line
 * per packet (time, source → destination, ICMP type, DROPPED when dropped),
 * or NDJSON with --json. The blocklist is pinned on bpffs so
 * scripts/ping_block.ts can block and unblock addresses while it runs.
 *
 *   sudo npx tsx src/loaders/ping_blocker.ts veth0 [--block 10.0.0.2 ...] [--json]
 *
 * In a network namespace, run it with `nsenter --net=/run/netns/NS`, not
 * `ip netns exec NS`: the latter gives the process a private /sys (and
 * bpffs), so the pin is invisible to the script.
 */
import { InvalidArgumentError } from 'commander';
import { runLesson } from '../cli/lesson.js';
import { tsxCommand } from '../cli/hint.js';
import { ensureBpffs } from '../bpffs.js';
import {
  Blocklist, defaultPinDir, formatPing, formatPingSummary, openPingWatch, parseBlockAddress, pingJson, type PingWatch,
} from '../lessons/ping_blocker.js';

interface Opts {
  block: string[];
  pinDir?: string;
}

function collectBlock(v: string, prev: string[] | undefined): string[] {
  try {
    return [...(prev ?? []), parseBlockAddress(v)];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

await runLesson<Opts, PingWatch>({
  lesson: 'ping_blocker',
  description: 'report every ICMP packet through a ring buffer; drop those from or to a blocked address',
  json: true,
  options: (cmd) => cmd
    .option('--block <ip>', 'drop ICMP from or to this address (repeatable; more with scripts/ping_block.ts)', collectBlock)
    .option('--pin-dir <dir>', 'pin the blocklist here (on bpffs) for scripts/ping_block.ts (default: /sys/fs/bpf/libbpf-ts/ping_blocker/<iface>-<netns>)'),
  async attach(ctx) {
    const { obj, iface, opts, log } = ctx;
    const list = Blocklist.fromObject(obj);
    for (const ip of opts.block ?? []) list.block(ip);
    if (ensureBpffs()) log('mounted a bpffs at /sys/fs/bpf (this mount namespace had none)');
    const dir = opts.pinDir ?? defaultPinDir(iface.name);
    list.pin(dir);
    ctx.defer(() => list.unpin());
    const link = ctx.own(obj.program('ping_blocker').attachXdp(iface.index, { mode: opts.mode, force: opts.force }));
    log(`attached ${link.description}; blocked: ${opts.block?.length ? opts.block.join(', ') : 'none'}`);
    log(`pinned the blocklist at ${dir} (block: ${tsxCommand('scripts/ping_block.ts', ['--pin-dir', dir, 'block', 'IP'])})`);
    log('Ctrl-C to stop');
  },
  async run(ctx) {
    const watch = openPingWatch(ctx.obj);
    ctx.defer(() => watch.reader.close());
    let reported = 0;
    const t = setInterval(() => {
      const lost = watch.counters().lost;
      if (lost > reported) ctx.log(`warning: ${lost - reported} events lost (the ring was full)`);
      reported = lost;
    }, 1000);
    t.unref();
    ctx.defer(() => clearInterval(t));
    const format = ctx.opts.json ? pingJson : formatPing;
    await watch.reader.consume((e) => ctx.out.line(format(e)), { signal: ctx.signal });
    return watch;
  },
  // Detached by now: the counters are final.
  summary: (ctx, watch) => ctx.log(formatPingSummary(watch.counters())),
});
