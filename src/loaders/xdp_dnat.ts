/**
 * xdp_dnat: a service load balancer. Attaches the XDP forward path
 * (VIP:port → backend, checksums fixed, sent out the backend's interface)
 * and the TC egress return path (backend → VIP as the replies' source) to
 * one interface, the one clients reach the VIPs through; pins the maps so
 * scripts/services.ts can add, change, remove and list services while it
 * runs; prints the hits per service every interval.
 *
 *   sudo npx tsx src/loaders/xdp_dnat.ts eth0
 *   sudo npx tsx src/loaders/xdp_dnat.ts eth0 --service 10.96.0.10:80/tcp=10.244.1.5:8080 --service 10.96.0.11:53/udp=10.244.1.6:5353
 *
 * --service takes the load balancer's text form (src/lb/model.ts),
 * VIP:PORT/PROTO=IP:PORT[*WEIGHT],IP:PORT...; this data plane takes one
 * backend per service until the Maglev data plane (issue 12) is in.
 *
 * In a network namespace, run it with `nsenter --net=/run/netns/NS`, not
 * `ip netns exec NS`: the latter gives the process a private /sys (and
 * bpffs), so the pins are invisible to the services script.
 */
import { InvalidArgumentError, Option } from 'commander';
import { parseSeconds, pollEvery, runLesson } from '../cli/lesson.js';
import { PROGRAMS, REPLY_TC_SLOT } from '../lessons/xdp_dnat.js';
import { DEFAULT_SERVICE, ServiceTable, formatService, fromLbService, toLbService, validateServices, type Service } from '../lessons/xdp_dnat/legacy_table.js';
import { HitMonitor, hitJson, renderHitTable } from '../lessons/xdp_dnat/monitor.js';
import { defaultPinDir } from '../lessons/xdp_dnat/pins.js';
import { parseService } from '../lb/model.js';
import { TC_MODES, type TcMode } from '../tc.js';
import { ensureBpffs } from '../bpffs.js';
import { tsxCommand } from '../cli/hint.js';

interface Opts {
  service: Service[];
  pinDir?: string;
  interval: number;
  tc: TcMode;
}

function collectService(v: string, prev: Service[] | undefined): Service[] {
  try {
    return [...(prev ?? []), fromLbService(parseService(v))];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

await runLesson<Opts>({
  lesson: 'xdp_dnat',
  description: 'service load balancer: XDP destination NAT to a backend, TC egress translating replies back to the VIP',
  json: true,
  options: (cmd) => cmd
    .option('--service <VIP:PORT/PROTO=IP:PORT[*WEIGHT],...>', 'a service (repeatable; default: 10.96.0.10:80/tcp=10.244.1.5:8080); this data plane takes one backend per service', collectService)
    .option('--pin-dir <dir>', 'pin the maps here (on bpffs) for scripts/services.ts (default: /sys/fs/bpf/libbpf-ts/xdp_dnat/<iface>-<netns>)')
    .option('--interval <seconds>', 'seconds between hit tables', parseSeconds, 2)
    .addOption(new Option('--tc <mode>', 'how to attach the TC egress program').choices(TC_MODES as string[]).default('auto')),
  // The whole --service list is checked (conflicts, a backend that is a VIP) before anything is loaded or attached.
  configure: (_obj, opts) => validateServices(opts.service ?? [DEFAULT_SERVICE]),
  async attach(ctx) {
    const { obj, iface, opts, log } = ctx;
    const xdp = ctx.own(obj.program(PROGRAMS.forward).attachXdp(iface.index, { mode: opts.mode, force: opts.force }));
    log(`attached ${xdp.description}`);
    const tc = ctx.own(obj.program(PROGRAMS.reply).attachTc(iface.index, 'egress', { mode: opts.tc, slot: REPLY_TC_SLOT }));
    log(`attached ${tc.description}`);
    log(tc.description.includes('(tcx link')
      ? `  (a TCX link: bpftool link show lists it; tc filter show and Debian 12's bpftool net show do not)`
      : `  (a clsact filter: tc filter show dev ${iface.name} egress)`);
    const table = ServiceTable.fromObject(obj);
    const services = opts.service ?? [DEFAULT_SERVICE];
    table.write(services, 'set');
    for (const s of services) log(`service ${formatService(s)}`);
    if (ensureBpffs()) log('mounted a bpffs at /sys/fs/bpf (this mount namespace had none)');
    const dir = opts.pinDir ?? defaultPinDir(iface.name);
    table.pin(dir);
    ctx.defer(() => table.unpin());
    log(`pinned maps at ${dir} (list services: ${tsxCommand('scripts/services.ts', ['--pin-dir', dir, 'list'])})`);
    log('Ctrl-C to stop');
  },
  async run(ctx) {
    const table = ServiceTable.fromObject(ctx.obj);
    const monitor = new HitMonitor({
      services: () => table.list().map((e) => ({ ...toLbService(e), packets: e.packets, bytes: e.bytes })),
      stats: () => table.stats(),
    });
    await pollEvery(ctx, ctx.opts.interval, () => {
      const s = monitor.snapshot();
      for (const l of ctx.opts.json ? [hitJson(s)] : renderHitTable(s)) ctx.out.line(l);
    });
  },
});
