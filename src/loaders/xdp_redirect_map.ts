/**
 * xdp_redirect_map: an IPv4 router at XDP between two interfaces. Frames
 * for a known neighbour get its MAC, TTL - 1, and leave by the other
 * interface through bpf_redirect_map() on a DEVMAP, never entering the
 * stack. The routes come from the kernel's neighbour table (re-read every
 * interval); the per-interface counters (per-CPU) are printed every interval.
 *
 *   sudo npx tsx src/loaders/xdp_redirect_map.ts lb0 --peer lb1 --mode native
 *
 * In native mode on veths, a frame redirected into a veth is dropped unless
 * the veth's peer has GRO on or runs an XDP program (see the README).
 */
import { parseSeconds, pollEvery, runLesson } from '../cli/lesson.js';
import { resolveInterface, type Interface } from '../netif.js';
import { PROGRAM, Router, formatCounters, type IfCounters, type Route } from '../lessons/xdp_redirect_map.js';

interface Opts {
  peer: string;
  interval: number;
}

const showRoute = (r: Route, ports: Interface[]) => `route ${r.dst} via port ${r.port} (${ports[r.port]?.name}): ${r.smac} -> ${r.dmac}`;

await runLesson<Opts, { router: Router; ports: Interface[] }>({
  lesson: 'xdp_redirect_map',
  description: 'an IPv4 router at XDP: frames for known neighbours leave by the other interface through a DEVMAP (bpf_redirect_map), MACs rewritten, TTL - 1',
  json: true,
  options: (cmd) => cmd
    .requiredOption('--peer <iface>', 'the second interface (port 1; <iface> is port 0)')
    .option('--interval <seconds>', 'seconds between counter lines (and neighbour table reads)', parseSeconds, 2),
  attach(ctx) {
    const { obj, iface, opts, log } = ctx;
    const peer = resolveInterface(opts.peer);
    if (peer.index === iface.index) throw new Error(`check interfaces: --peer ${peer.name} is <iface> itself`);
    const ports = [iface, peer];
    const router = Router.fromObject(obj);
    ports.forEach((p, i) => router.setPort(i, p.index));
    for (const r of router.learn(ports)) log(showRoute(r, ports));
    if (router.routes().length === 0) log(`no neighbours known on ${iface.name} or ${peer.name} yet (routes are added as the kernel learns them: ping from each side once)`);
    for (const p of ports) {
      const link = ctx.own(obj.program(PROGRAM).attachXdp(p.index, { mode: opts.mode, force: opts.force }));
      log(`attached ${link.description}`);
    }
    log('Ctrl-C to stop');
  },
  async run(ctx) {
    const router = Router.fromObject(ctx.obj);
    const ports = [ctx.iface, resolveInterface(ctx.opts.peer)];
    await pollEvery(ctx, ctx.opts.interval, () => {
      for (const r of router.learn(ports)) ctx.log(showRoute(r, ports));
      const counts: Record<string, IfCounters> = {};
      for (const p of ports) counts[p.name] = router.counters(p.index);
      if (ctx.opts.json) ctx.out.line(JSON.stringify({ time: new Date().toISOString(), interfaces: counts }));
      else for (const p of ports) ctx.out.line(formatCounters(p.name, counts[p.name]));
    });
    return { router, ports };
  },
  summary: (ctx, { router, ports }) => {
    for (const p of ports) ctx.log(formatCounters(p.name, router.counters(p.index)));
  },
});
