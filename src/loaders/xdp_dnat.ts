/**
 * xdp_dnat: a service load balancer. Attaches the XDP forward path
 * (VIP:port → a backend picked by Maglev, remembered per connection,
 * checksums fixed, sent out the backend's interface) and the TC egress
 * return path (backend → VIP as the replies' source) to one interface, the
 * one clients reach the VIPs through; pins the maps so scripts/services.ts
 * can change the services while it runs; prints the hits per service every
 * interval.
 *
 *   sudo npx tsx src/loaders/xdp_dnat.ts eth0
 *   sudo npx tsx src/loaders/xdp_dnat.ts eth0 --service 10.96.0.10:80/tcp=10.244.1.5:8080,10.244.1.6:8080*2
 *   sudo npx tsx src/loaders/xdp_dnat.ts eth0 --pin-dir /sys/fs/bpf/lb   # state and links survive a restart
 *
 *   sudo npx tsx src/loaders/xdp_dnat.ts eth0 --kubernetes --kubeconfig ~/.kube/config --pin-dir /sys/fs/bpf/lb
 *
 * --kubernetes: the services come from the cluster's Services and
 * EndpointSlices, kept in step by the control plane in src/k8s/ (see
 * bpf/xdp_dnat/KUBERNETES.md), with /metrics and /healthz on --metrics-addr.
 *
 * With --pin-dir, the maps and the links stay pinned when it exits and the
 * next loader given the same directory adopts them: same services, same
 * connections, its programs swapped into the links in place. Without it,
 * everything is detached and unpinned on exit.
 *
 * In a network namespace, run it with `nsenter --net=/run/netns/NS`, not
 * `ip netns exec NS`: the latter gives the process a private /sys (and
 * bpffs), so the pins are invisible to the services script.
 */
import { join } from 'node:path';
import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { queryXdp } from '../xdp.js';
import { InvalidArgumentError, Option } from 'commander';
import { parseSeconds, parsePositiveInt, pollEvery, runLesson } from '../cli/lesson.js';
import { DEFAULT_SERVICE, REPLY_TC_SLOT } from '../lessons/xdp_dnat.js';
import { PINS, defaultPinDir } from '../lessons/xdp_dnat/pins.js';
import { HitMonitor, hitJson, renderHitTable } from '../lessons/xdp_dnat/monitor.js';
import {
  LB_LINKS, LB_PROGRAMS, adoptPinnedMaps, attachOrUpdate, configureDataPlane, dataPlaneMaps, pinDataPlaneMaps,
  DATA_PLANE_PIN_NAMES, readDnatStats,
} from '../lb/dataplane.js';
import { ServiceTable } from '../lb/table.js';
import { describeService, parseService, validateServices, type Service } from '../lb/model.js';
import { Link } from '../link.js';
import { BpfError, Errno } from '../errors.js';
import { mapInUse, pinnedMapId } from '../map.js';
import { TC_MODES, type TcMode } from '../tc.js';
import { ensureBpffs } from '../bpffs.js';
import { tsxCommand } from '../cli/hint.js';
import { refreshForwardingOnChange } from '../lb/fibwatch.js';
import { describeChange } from '../net/rtwatch.js';
import { DEFAULT_METRICS_ADDR, checkKubernetesMode, runKubernetesMode } from '../k8s/mode.js';
import { parseListenAddr } from '../k8s/metrics.js';

interface Opts {
  service?: Service[];
  kubernetes?: boolean;
  kubeconfig?: string;
  metricsAddr: string;
  pinDir?: string;
  interval: number;
  tc: TcMode;
  maxServices?: number;
  maxBackends?: number;
  conntrackSize?: number;
  tcpTimeout?: number;
  udpTimeout?: number;
}

function collectService(v: string, prev: Service[] | undefined): Service[] {
  try {
    return [...(prev ?? []), parseService(v)];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

function checkMetricsAddr(v: string): string {
  if (v === 'none') return v;
  try {
    parseListenAddr(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return v;
}

const DEFAULT = DEFAULT_SERVICE;

let adopted: string[] = [];
let dir = '';

await runLesson<Opts>({
  lesson: 'xdp_dnat',
  description: 'service load balancer: Maglev over many backends, connection tracking, XDP destination NAT, TC egress translating replies back to the VIP',
  json: true,
  options: (cmd) => cmd
    .option('--service <VIP:PORT/PROTO=IP:PORT[*W],...>', 'a service and its backends with weights (repeatable; default: 10.96.0.10:80/tcp=10.244.1.5:8080)', collectService)
    .addOption(new Option('--kubernetes', 'take the services from the Kubernetes API (Services and EndpointSlices), kept in step; see bpf/xdp_dnat/KUBERNETES.md').conflicts('service'))
    .option('--kubeconfig <path>', 'with --kubernetes: the kubeconfig to use (default: the pod\'s service account)')
    .option('--metrics-addr <host:port>', 'with --kubernetes: serve /metrics and /healthz here (\'none\': no server)', checkMetricsAddr, DEFAULT_METRICS_ADDR)
    .option('--pin-dir <dir>', 'keep the state (maps) and the links pinned here on exit, and adopt what a previous loader left here (default: a throwaway /sys/fs/bpf/libbpf-ts/xdp_dnat/<iface>-<netns>, removed on exit)')
    .option('--interval <seconds>', 'seconds between hit tables', parseSeconds, 2)
    .option('--max-services <n>', 'services the maps hold (default 1024)', parsePositiveInt)
    .option('--max-backends <n>', 'backends the maps hold, all services together (default 4096)', parsePositiveInt)
    .option('--conntrack-size <n>', 'connection entries (LRU; default 65536)', parsePositiveInt)
    .option('--tcp-timeout <seconds>', 'idle timeout of a TCP connection (default 3600)', parsePositiveInt)
    .option('--udp-timeout <seconds>', 'idle timeout of a UDP flow (default 60)', parsePositiveInt)
    .addOption(new Option('--tc <mode>', 'how to attach the TC egress program').choices(TC_MODES as string[]).default('auto')),
  configure(obj, opts) {
    if (!opts.kubernetes && (opts.kubeconfig !== undefined || opts.metricsAddr !== DEFAULT_METRICS_ADDR)) {
      throw new InvalidArgumentError('--kubeconfig and --metrics-addr go with --kubernetes');
    }
    if (opts.kubernetes) checkKubernetesMode(opts.kubeconfig, opts.metricsAddr); // before anything is loaded
    // The whole --service list is checked (a service twice, a backend that is a VIP) before anything is loaded.
    validateServices(opts.service ?? [DEFAULT]);
    configureDataPlane(obj, {
      maxServices: opts.maxServices, maxBackends: opts.maxBackends, conntrackSize: opts.conntrackSize,
      tcpTimeout: opts.tcpTimeout, udpTimeout: opts.udpTimeout,
    });
    if (opts.pinDir) {
      adopted = adoptPinnedMaps(obj, opts.pinDir);
    }
  },
  async attach(ctx) {
    const { obj, iface, opts, log } = ctx;
    if (ensureBpffs()) log('mounted a bpffs at /sys/fs/bpf (this mount namespace had none)');
    const keep = opts.pinDir !== undefined;
    dir = opts.pinDir ?? defaultPinDir(iface.name);
    if (!keep) {
      // The throwaway directory: refuse a running loader's, take over a dead one's.
      const marker = join(dir, PINS.marker);
      if (existsSync(marker)) {
        const id = pinnedMapId(marker);
        if (id !== undefined && mapInUse(id)) throw new BpfError(`pin services at ${dir}`, Errno.EBUSY, `another xdp_dnat loader is using ${dir} (use --pin-dir to pick another directory)`);
        PINS.unpin(dir, DATA_PLANE_PIN_NAMES);
      }
    }
    if (keep) mkdirSync(dir, { recursive: true }); // the links are pinned in it
    const maps = dataPlaneMaps(obj);
    if (adopted.length) log(`adopted ${adopted.length} pinned maps from ${dir} (${adopted.join(', ')})`);
    const fwdProg = obj.program(LB_PROGRAMS.forward);
    const replyProg = obj.program(LB_PROGRAMS.reply);
    const linkPath = (name: string) => (keep ? join(dir, name) : undefined);
    // Links pinned for an interface that is gone (or another one) are stale: drop them, attach anew.
    const pinnedXdp = keep ? Link.openPinned(join(dir, LB_LINKS.forward), 'pinned xdp link') : undefined;
    if (pinnedXdp) {
      const progId = pinnedXdp.info().progId;
      pinnedXdp.release();
      if (!queryXdp(iface.index).some((p) => p.id === progId)) {
        for (const name of Object.values(LB_LINKS)) { try { unlinkSync(join(dir, name)); } catch { /* not there */ } }
        log(`removed the links pinned in ${dir}: they are not attached to ${iface.name} (a previous lab or interface)`);
      }
    }
    const fwd = attachOrUpdate(linkPath(LB_LINKS.forward), fwdProg.fd, fwdProg.name,
      () => fwdProg.attachXdp(iface.index, { mode: opts.mode, force: opts.force }), () => `xdp ${fwdProg.name} on ${iface.name} (pinned link, program replaced in place)`);
    const tc = attachOrUpdate(linkPath(LB_LINKS.reply), replyProg.fd, replyProg.name,
      () => replyProg.attachTc(iface.index, 'egress', { mode: opts.tc, slot: REPLY_TC_SLOT }), () => `tc egress ${replyProg.name} on ${iface.name} (pinned tcx link, program replaced in place)`);
    for (const [a, what] of [[fwd, 'xdp'], [tc, 'tc egress']] as const) {
      if (keep && a.link instanceof Link) {
        ctx.defer(() => (a.link as Link).release());
        log(`${a.outcome === 'updated' ? 'replaced the program in place' : 'attached'}: ${a.link.description}${a.outcome === 'attached' ? ` (link pinned at ${(a.link as Link).pinnedAt})` : ''}`);
      } else {
        ctx.own(a.link);
        log(`attached ${a.link.description}`);
        if (keep) log(`  (${what}: not a bpf_link here, so it cannot be kept across restarts)`);
      }
    }
    if (tc.outcome === 'attached') {
      log(tc.link.description.includes('(tcx link')
        ? `  (a TCX link: bpftool link show lists it; tc filter show and Debian 12's bpftool net show do not)`
        : `  (a clsact filter: tc filter show dev ${iface.name} egress)`);
    }
    // Services: the adopted ones stay as they are unless --service is given.
    const table = new ServiceTable(maps);
    if (adopted.length && table.size > 0 && !opts.service) {
      for (const sv of table.services().slice(0, 20)) log(`service ${describeService(sv)} (adopted)`);
      if (table.size > 20) log(`... and ${table.size - 20} more services (adopted)`);
    } else if (opts.kubernetes) {
      log('services: none until the first list from the Kubernetes API');
    } else {
      const r = table.apply(opts.service ?? [DEFAULT]);
      for (const sv of table.services()) log(`service ${describeService(sv)}`);
      if (adopted.length) log(`applied --service to the adopted state: ${r.servicesAdded} added, ${r.servicesChanged} changed, ${r.servicesRemoved} removed, ${r.servicesUnchanged} unchanged`);
    }
    pinDataPlaneMaps(maps, dir);
    // Routes or neighbours changed: every flow's cached forwarding is looked up again on its next packet.
    const watch = refreshForwardingOnChange(maps.globals,
      (g, c) => { if (opts.verbose) log(`fib_generation ${g}: ${describeChange(c)}`); },
      (e) => log(`warning: route and neighbour watch: ${e.message}`));
    ctx.defer(() => watch.close());
    if (!keep) ctx.defer(() => PINS.unpin(dir, DATA_PLANE_PIN_NAMES));
    log(`pinned maps at ${dir}${keep ? ' (kept on exit: the next loader with this --pin-dir adopts them)' : ''} (list services: ${tsxCommand('scripts/services.ts', ['--pin-dir', dir, 'list'])})`);
    log('Ctrl-C to stop');
  },
  async run(ctx) {
    const maps = dataPlaneMaps(ctx.obj);
    const table = new ServiceTable(maps);
    if (ctx.opts.kubernetes) {
      // The control plane is the maps' only writer from here on.
      await runKubernetesMode({
        table, kubeconfig: ctx.opts.kubeconfig, metricsAddr: ctx.opts.metricsAddr, signal: ctx.signal, log: ctx.log, out: ctx.out, json: ctx.opts.json,
      });
      return;
    }
    // scripts/services.ts writes the same maps from another process: re-read them before each listing.
    const monitor = new HitMonitor({
      services: () => { table.refresh(); return table.list(); },
      stats: () => readDnatStats(maps.stats, maps.flowCache),
    });
    await pollEvery(ctx, ctx.opts.interval, () => {
      const s = monitor.snapshot();
      for (const l of ctx.opts.json ? [hitJson(s)] : renderHitTable(s)) ctx.out.line(l);
    });
  },
  summary(ctx) {
    if (ctx.opts.pinDir) ctx.log(`left the programs attached and the state pinned in ${dir}: start the loader again with --pin-dir ${dir} to adopt them, or remove the directory to detach`);
  },
});
