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
import { existsSync, mkdirSync } from 'node:fs';
import { InvalidArgumentError, Option } from 'commander';
import { parseSeconds, parsePositiveInt, pollEvery, runLesson } from '../cli/lesson.js';
import { DEFAULT_SERVICE, PINS, REPLY_TC_SLOT, defaultPinDir, parseService, type Service } from '../lessons/xdp_dnat.js';
import {
  LB_LINKS, LB_PROGRAMS, adoptPinnedMaps, attachOrUpdate, configureDataPlane, dataPlaneMaps, pinDataPlaneMaps, readServices,
  removeDataPlanePins, roundRobinTable, writeServiceRaw, readDnatStats, DNAT_REASONS, type DataPlaneService,
} from '../lb/dataplane.js';
import { Link } from '../link.js';
import { parseIpv4 } from '../codec.js';
import { BpfError, Errno } from '../errors.js';
import { mapInUse, pinnedMapId } from '../map.js';
import { TC_MODES, type TcMode } from '../tc.js';
import { ensureBpffs } from '../bpffs.js';
import { tsxCommand } from '../cli/hint.js';
import { formatRate, rate } from '../cli/output.js';

/** A service with its backends and weights, as --service gives it. */
interface LbService { text: string; addr: Service; backends: Array<{ ip: string; port: number; weight: number }> }

interface Opts {
  service?: LbService[];
  pinDir?: string;
  interval: number;
  tc: TcMode;
  maxServices?: number;
  maxBackends?: number;
  conntrackSize?: number;
  tcpTimeout?: number;
  udpTimeout?: number;
}

/** "VIP:PORT/PROTO=IP:PORT[*WEIGHT],IP:PORT..." */
function parseLbService(v: string): LbService {
  const eq = v.indexOf('=');
  if (eq < 0) return { text: v, addr: parseService(v), backends: [] };
  const backends = v.slice(eq + 1).split(',').map((b) => {
    const m = /^(.*?)(?:\*(\d+))?$/.exec(b.trim())!;
    const s = parseService(`${v.slice(0, eq)}=${m[1]}`);
    const weight = m[2] === undefined ? 1 : Number(m[2]);
    if (weight < 1 || weight > 65535) throw new RangeError(`backend ${m[1]}: weight ${m[2]} is out of range (1-65535)`);
    return { ...s.backend, weight };
  });
  return { text: v, addr: parseService(`${v.slice(0, eq)}=${v.slice(eq + 1).split(',')[0].replace(/\*\d+$/, '')}`), backends };
}

function collectService(v: string, prev: LbService[] | undefined): LbService[] {
  try {
    return [...(prev ?? []), parseLbService(v)];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

const DEFAULT: LbService = { text: '', addr: DEFAULT_SERVICE, backends: [{ ...DEFAULT_SERVICE.backend, weight: 1 }] };
const svcText = (s: LbService) => `${s.addr.vip}:${s.addr.port}/${s.addr.proto} → ${s.backends.map((b) => `${b.ip}:${b.port}${b.weight !== 1 ? `*${b.weight}` : ''}`).join(', ')}`;

function renderServices(list: DataPlaneService[], prev: Map<number, number>, elapsed: number): string[] {
  const lines: string[] = [];
  for (const s of list) {
    const pps = rate(prev.get(s.id) ?? 0, s.packets, elapsed);
    lines.push(`${`${s.vip}:${s.port}/${s.proto}`.padEnd(24)} ${String(s.packets).padStart(10)} pkts ${String(s.bytes).padStart(12)} bytes ${formatRate(pps).padStart(8)} pkt/s`);
    for (const b of s.backends) lines.push(`    → ${b.addr.padEnd(21)} ${(100 * b.slots / 1021).toFixed(1).padStart(5)}% of the table${b.active ? '' : ' (inactive)'}`);
  }
  return lines;
}

let adopted: string[] = [];
let dir = '';

await runLesson<Opts>({
  lesson: 'xdp_dnat',
  description: 'service load balancer: Maglev over many backends, connection tracking, XDP destination NAT, TC egress translating replies back to the VIP',
  json: true,
  options: (cmd) => cmd
    .option('--service <VIP:PORT/PROTO=IP:PORT[*W],...>', 'a service and its backends with weights (repeatable; default: 10.96.0.10:80/tcp=10.244.1.5:8080)', collectService)
    .option('--pin-dir <dir>', 'keep the state (maps) and the links pinned here on exit, and adopt what a previous loader left here (default: a throwaway /sys/fs/bpf/libbpf-ts/xdp_dnat/<iface>-<netns>, removed on exit)')
    .option('--interval <seconds>', 'seconds between hit tables', parseSeconds, 2)
    .option('--max-services <n>', 'services the maps hold (default 1024)', parsePositiveInt)
    .option('--max-backends <n>', 'backends the maps hold, all services together (default 4096)', parsePositiveInt)
    .option('--conntrack-size <n>', 'connection entries (LRU; default 65536)', parsePositiveInt)
    .option('--tcp-timeout <seconds>', 'idle timeout of a TCP connection (default 3600)', parsePositiveInt)
    .option('--udp-timeout <seconds>', 'idle timeout of a UDP flow (default 60)', parsePositiveInt)
    .addOption(new Option('--tc <mode>', 'how to attach the TC egress program').choices(TC_MODES as string[]).default('auto')),
  configure(obj, opts) {
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
        removeDataPlanePins(dir);
      }
    }
    if (keep) mkdirSync(dir, { recursive: true }); // the links are pinned in it
    const maps = dataPlaneMaps(obj);
    if (adopted.length) log(`adopted ${adopted.length} pinned maps from ${dir} (${adopted.join(', ')})`);
    const fwdProg = obj.program(LB_PROGRAMS.forward);
    const replyProg = obj.program(LB_PROGRAMS.reply);
    const linkPath = (name: string) => (keep ? join(dir, name) : undefined);
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
    const existing = readServices(maps);
    if (adopted.length && existing.length && !opts.service) {
      for (const s of existing) log(`service ${s.vip}:${s.port}/${s.proto} → ${s.backends.map((b) => b.addr).join(', ')} (adopted)`);
    } else {
      const list = opts.service ?? [DEFAULT];
      let nextBackend = 1;
      list.forEach((s, i) => {
        if (s.backends.length === 0) throw new BpfError(`add service ${s.text}`, Errno.EINVAL, 'no backends');
        const slots = s.backends.map((b) => ({ id: nextBackend++, ip: parseIpv4(b.ip), port: b.port }));
        const table = roundRobinTable(slots.map((b) => b.id), s.backends.map((b) => b.weight));
        writeServiceRaw(maps, { vip: parseIpv4(s.addr.vip), port: s.addr.port, proto: s.addr.proto === 'tcp' ? 6 : 17 }, i, slots, table);
        log(`service ${svcText(s)}`);
      });
    }
    pinDataPlaneMaps(maps, dir);
    if (!keep) ctx.defer(() => removeDataPlanePins(dir));
    log(`pinned maps at ${dir}${keep ? ' (kept on exit: the next loader with this --pin-dir adopts them)' : ''} (list services: ${tsxCommand('scripts/services.ts', ['--pin-dir', dir, 'list'])})`);
    log('Ctrl-C to stop');
  },
  async run(ctx) {
    const maps = dataPlaneMaps(ctx.obj);
    let prev = new Map<number, number>();
    let last = performance.now();
    await pollEvery(ctx, ctx.opts.interval, () => {
      const now = performance.now();
      const elapsed = (now - last) / 1000;
      last = now;
      const list = readServices(maps);
      const stats = readDnatStats(maps.stats);
      if (ctx.opts.json) {
        ctx.out.line(JSON.stringify({ time: new Date().toISOString(), elapsed, services: list, stats }));
      } else {
        ctx.out.line(`${new Date().toISOString().slice(11, 19)}  ${list.length} service${list.length === 1 ? '' : 's'}, last ${elapsed.toFixed(1)} s`);
        for (const l of renderServices(list, prev, elapsed)) ctx.out.line(l);
        const reasons = DNAT_REASONS.filter((r) => stats[r] > 0).map((r) => `${r} ${stats[r]}`);
        ctx.out.line(`packets: ${reasons.length ? reasons.join(', ') : 'none yet'}`);
        ctx.out.line('');
      }
      prev = new Map(list.map((s) => [s.id, s.packets]));
    });
  },
  summary(ctx) {
    if (ctx.opts.pinDir) ctx.log(`left the programs attached and the state pinned in ${dir}: start the loader again with --pin-dir ${dir} to adopt them, or remove the directory to detach`);
  },
});
