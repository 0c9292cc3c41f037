/**
 * `sudo npm start`: the load balancer end to end, on a throwaway lab.
 *
 * Builds three network namespaces (client -- load balancer -- backends),
 * starts two backends (10.244.1.5 and 10.244.1.6: TCP echo servers and UDP
 * responders in the backend namespace), runs the xdp_dnat loader on the
 * load balancer's client-facing interface (as a user would: a separate
 * process, entered with nsenter --net) with both backends behind
 * 10.96.0.10:80, adds a UDP service through the pinned maps while the
 * loader runs, opens TCP connections to the VIP from the client and shows
 * how Maglev spread them over the two backends, makes a UDP exchange with
 * 10.96.0.11:53, removes one backend and shows new connections all going to
 * the other, then the counters.
 *
 * Tears everything down (the loader, the servers, the lab) however it ends:
 * done, failed, an exception, SIGINT/SIGTERM/SIGHUP, or its reader gone
 * (`npm start | head`). The loader it starts dies with it even when it is
 * killed outright (setpriv --pdeathsig).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ensureObject, objectPath, REPO_ROOT } from './cli/build.js';
import { exitStatusFor, newCommand, runCommand, type CommandContext } from './cli/command.js';
import { tsxCommand } from './cli/hint.js';
import { isRoot } from './ffi/sys.js';
import { DEFAULT_SERVICE } from './lessons/xdp_dnat.js';
import { PIN_ROOT } from './lessons/xdp_dnat/pins.js';
import { ServiceTable } from './lb/table.js';
import { describeService, formatService, type Service } from './lb/model.js';
import { DNAT_REASONS, closeDataPlaneMaps, openPinnedDataPlane, readDnatStats } from './lb/dataplane.js';
import { cleanup, dnatLab, type DnatLab } from './lab/topology.js';
import { run } from './lab/netns.js';
import { holdTcpConnections, startBackendServers, tcpExchange, udpExchange, type BackendServers, type HeldConnections } from './lab/traffic.js';

/** The demo lab's tag: its namespaces are lbts-dnatdemo-client, -lb and -backend. */
const DEMO_TAG = 'dnatdemo';
/**
 * Where the demo's loader pins its maps: its default directory, of lb0 in
 * the lab's lb namespace (removed when it stops; --pin-dir would keep it).
 */
const demoPinDir = (lab: DnatLab) => join(PIN_ROOT, `${lab.lbClientIf}-${statSync(`/run/netns/${lab.lb}`).ino}`);
/** The second backend's address (in the backend namespace, next to lab.backendIp). */
const SECOND_BACKEND = '10.244.1.6';
/** The demo's TCP service: the lesson's VIP with two backends. */
const DEMO_TCP_SERVICE: Service = {
  vip: DEFAULT_SERVICE.vip, port: DEFAULT_SERVICE.port, proto: 'tcp', backends: [{ ip: '10.244.1.5', port: 8080 }, { ip: SECOND_BACKEND, port: 8080 }],
};
/** TCP connections opened to show the spread. */
const SPREAD_CONNECTIONS = 8;
/** TCP connections held open while a backend is removed. */
const HELD_CONNECTIONS = 6;
/** The UDP service the demo adds while the loader runs. */
const DEMO_UDP_SERVICE: Service = { vip: '10.96.0.11', port: 53, proto: 'udp', backends: [{ ip: '10.244.1.5', port: 5353 }] };

/** Rejects with the abort reason as soon as `signal` aborts; else settles as `p`. */
function unlessAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Starts the loader in the lab's lb namespace; it gets SIGINT when this process dies. */
function spawnLoader(lab: DnatLab): { child: ChildProcess; shown: string } {
  const cmd = ['setpriv', '--pdeathsig', 'SIGINT', 'nsenter', `--net=/run/netns/${lab.lb}`,
    process.execPath, '--import', 'tsx', join(REPO_ROOT, 'src', 'loaders', 'xdp_dnat.ts'),
    lab.lbClientIf, '--interval', '3600', '--service', formatService(DEMO_TCP_SERVICE)];
  const child = spawn(cmd[0], cmd.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  return { child, shown: `nsenter --net=/run/netns/${lab.lb} ${tsxCommand('src/loaders/xdp_dnat.ts', cmd.slice(9))}` };
}

async function demo(ctx: CommandContext): Promise<number> {
  const { out, signal, log } = ctx;
  const say = (s: string) => out.line(s);
  if (!isRoot()) { log('error: the demo builds network namespaces and loads BPF programs: run it as root (sudo npm start)'); return 1; }
  let lab: DnatLab | undefined;
  let loader: ChildProcess | undefined;
  let loaderErr = '';
  const servers: BackendServers[] = [];
  let table: ServiceTable | undefined;
  let held: HeldConnections | undefined;
  // Steps under way (building the lab, starting the servers): teardown lets them settle first.
  const pending = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    pending.add(p);
    p.catch(() => undefined).finally(() => pending.delete(p));
    return unlessAborted(p, signal);
  };
  const step = (n: number, text: string) => say(`\n[${n}/8] ${text}`);
  let status = 0;
  try {
    step(1, 'build the BPF object');
    const had = existsSync(objectPath('xdp_dnat'));
    say(`  ${ensureObject('xdp_dnat')} (${had ? 'up to date or rebuilt' : 'built now'})`);

    step(2, 'build the lab: client -- load balancer -- backend, in three network namespaces');
    const L = await track(dnatLab(DEMO_TAG).then((l) => (lab = l)));
    say(`  client  ${L.client}: ${L.clientIf} ${L.clientIp}, routes ${L.vipNet} (the service network) via ${L.lbClientIp}`);
    say(`  lb      ${L.lb}: ${L.lbClientIf} ${L.lbClientIp} (clients) | ${L.lbBackendIf} ${L.lbBackendIp} (backends), forwarding on`);
    say(`  backend ${L.backend}: ${L.backendIf} ${L.backendIp}`);

    step(3, `start two backends in ${L.backend}: TCP echo on :8080, UDP responder on :5353, at ${L.backendIp} and ${SECOND_BACKEND}`);
    await track(run(['ip', '-n', L.backend, 'addr', 'add', `${SECOND_BACKEND}/24`, 'dev', L.backendIf]));
    const srv = await track(startBackendServers(L.backend, L.backendIp, [8080], [5353]).then((s) => { servers.push(s); return s; }));
    const srv2 = await track(startBackendServers(L.backend, SECOND_BACKEND, [8080], []).then((s) => { servers.push(s); return s; }));
    say(`  listening on ${L.backendIp}:8080/tcp, ${L.backendIp}:5353/udp and ${SECOND_BACKEND}:8080/tcp`);
    /** Which backend saw the client's address:port `local` (0: the first, 1: the second, -1: none yet). */
    const backendOf = (local: string) => [srv, srv2].findIndex((x) => x.seen().some((l) => l.startsWith(`tcp 8080 ${local}`) && !/\d/.test(l.charAt(`tcp 8080 ${local}`.length))));
    const backendName = (i: number) => (i === 0 ? L.backendIp : SECOND_BACKEND);
    /** Opens `n` TCP connections to the VIP one after another; how many each backend accepted. */
    const spread = async (n: number): Promise<number[]> => {
      const locals: string[] = [];
      for (let i = 0; i < n; i++) {
        const c = await unlessAborted(tcpExchange(L.client, DEMO_TCP_SERVICE.vip, DEMO_TCP_SERVICE.port, 4096, 3, signal), signal);
        if (!c.connected || !c.same) throw new Error(`TCP connection ${i + 1} to ${DEMO_TCP_SERVICE.vip}:${DEMO_TCP_SERVICE.port} failed: ${c.error ?? `got ${c.received} of ${c.sent} bytes back`}`);
        locals.push(c.local!);
      }
      // The servers print each accepted connection: give them a moment.
      for (let w = 0; w < 40 && !locals.every((l) => backendOf(l) >= 0); w++) await unlessAborted(new Promise((r) => setTimeout(r, 50)), signal);
      const counts = [0, 0];
      for (const l of locals) { const b = backendOf(l); if (b >= 0) counts[b]++; }
      return counts;
    };

    step(4, `run the loader on ${L.lbClientIf} in ${L.lb} (nsenter --net, so its pins are visible here)`);
    const started = spawnLoader(L);
    const child = started.child;
    loader = child;
    say(`  $ ${started.shown}`);
    let shown = 0;
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      loaderErr += d;
      const lines = loaderErr.split('\n');
      for (; shown < lines.length - 1; shown++) say(`  loader: ${lines[shown]}`);
    });
    child.on('error', (e) => { loaderErr += `\n${e.message}\n`; });
    await unlessAborted(new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      const tick = () => {
        if (signal.aborted) return resolve();
        if (loaderErr.includes('Ctrl-C to stop')) return resolve();
        if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`the loader exited: ${loaderErr.trim().split('\n').pop()}`));
        if (Date.now() - t0 > 60_000) return reject(new Error('the loader did not start within 60 s'));
        setTimeout(tick, 50);
      };
      tick();
    }), signal);

    step(5, 'add a UDP service while it runs, through the pinned maps (what scripts/services.ts does)');
    const tbl = table = ServiceTable.openPinned(demoPinDir(L));
    tbl.add(DEMO_UDP_SERVICE);
    say(`  added ${describeService(DEMO_UDP_SERVICE)}`);
    say(`  (by hand: ${tsxCommand('scripts/services.ts', ['--pin-dir', demoPinDir(L), 'add', formatService(DEMO_UDP_SERVICE)])})`);

    step(6, `from the client: TCP to ${DEFAULT_SERVICE.vip}:${DEFAULT_SERVICE.port} (two backends), UDP to ${DEMO_UDP_SERVICE.vip}:${DEMO_UDP_SERVICE.port}`);
    const t = await unlessAborted(tcpExchange(L.client, DEFAULT_SERVICE.vip, DEFAULT_SERVICE.port, 256 * 1024, 3, signal), signal);
    if (!t.connected) throw new Error(`TCP connection to ${DEFAULT_SERVICE.vip}:${DEFAULT_SERVICE.port} failed: ${t.error}`);
    say(`  ✓ TCP connected: client ${t.local} → ${t.peer} (the client's socket sees the VIP: replies were translated back)`);
    if (!t.same) throw new Error(`TCP echo: sent ${t.sent} bytes, got ${t.received} back${t.received === t.sent ? ', different' : ''}`);
    say(`  ✓ TCP data both ways: sent ${t.sent} bytes, got the same ${t.received} bytes back`);
    const first = backendOf(t.local!);
    say(`  ✓ backend ${first >= 0 ? backendName(first) : '(not printed yet)'}:8080 accepted the connection from ${t.local} (the client's real address)`);
    const counts = await spread(SPREAD_CONNECTIONS);
    say(`  ✓ ${SPREAD_CONNECTIONS} more connections, spread by Maglev over the 5-tuples: ${counts[0]} on ${L.backendIp}:8080, ${counts[1]} on ${SECOND_BACKEND}:8080`);
    const u = await unlessAborted(udpExchange(L.client, DEMO_UDP_SERVICE.vip, DEMO_UDP_SERVICE.port, 32, 2, signal), signal);
    if (!u.answered) throw new Error(`UDP to ${DEMO_UDP_SERVICE.vip}:${DEMO_UDP_SERVICE.port}: no answer (${u.error})`);
    say(`  ✓ UDP answered: client ${u.local} → ${u.from}, ${u.same ? 'same bytes back' : 'DIFFERENT bytes'}`);
    const sawUdp = srv.seen().find((x) => x.startsWith('udp 5353 '));
    say(`  ✓ the backend got the datagram from ${sawUdp?.split(' ')[2]}`);

    step(7, `remove backend ${SECOND_BACKEND}:8080 while the loader runs (ServiceTable.change on the pinned maps)`);
    const hold = held = await unlessAborted(holdTcpConnections(L.client, DEMO_TCP_SERVICE.vip, DEMO_TCP_SERVICE.port, HELD_CONNECTIONS), signal);
    if (!(await unlessAborted(hold.exchange(1, 1000, 0), signal)).every(Boolean)) throw new Error('held connections: an exchange failed before any change');
    for (let w = 0; w < 40 && !hold.locals.every((l) => backendOf(l) >= 0); w++) await unlessAborted(new Promise((r) => setTimeout(r, 50)), signal);
    const heldOn = hold.locals.map(backendOf);
    const onFirst = heldOn.filter((b) => b === 0).length;
    say(`  holding ${HELD_CONNECTIONS} open connections: ${onFirst} on ${L.backendIp}:8080, ${heldOn.filter((b) => b === 1).length} on ${SECOND_BACKEND}:8080`);
    const kept: Service = { ...DEMO_TCP_SERVICE, backends: [DEMO_TCP_SERVICE.backends[0]] };
    tbl.change(kept);
    say(`  changed ${describeService(kept)}`);
    say(`  (by hand: ${tsxCommand('scripts/services.ts', ['--pin-dir', demoPinDir(L), 'change', formatService(kept)])})`);
    say('  established connections keep their backend (their connection entries); only those on the removed one pick again');
    const ok = await unlessAborted(hold.exchange(3, 1000, 0.05), signal);
    const carried = heldOn.filter((b, i) => b === 0 && ok[i]).length;
    if (carried !== onFirst) throw new Error(`${onFirst - carried} of the ${onFirst} held connections on ${L.backendIp} broke when ${SECOND_BACKEND} was removed`);
    const cut = heldOn.filter((b, i) => b === 1 && !ok[i]).length;
    say(`  ✓ the ${onFirst} held connections on ${L.backendIp}:8080 carried on exchanging data; ${cut} of the ${heldOn.length - onFirst} on the removed backend were cut (moved to ${L.backendIp}, which knows no such connection and resets it)`);
    await hold.close();
    const after = await spread(SPREAD_CONNECTIONS);
    if (after[1] !== 0) throw new Error(`${after[1]} new connections still went to the removed backend ${SECOND_BACKEND}`);
    say(`  ✓ ${SPREAD_CONNECTIONS} new connections: ${after[0]} on ${L.backendIp}:8080, ${after[1]} on ${SECOND_BACKEND}:8080`);

    step(8, 'counters (per-CPU maps, summed)');
    for (const e of tbl.list()) say(`  ${describeService(e).padEnd(40)} ${String(e.packets).padStart(6)} packets ${String(e.bytes).padStart(9)} bytes`);
    const dp = openPinnedDataPlane(demoPinDir(L));
    let st: ReturnType<typeof readDnatStats>;
    try { st = readDnatStats(dp.stats); } finally { closeDataPlaneMaps(dp); }
    say(`  ${DNAT_REASONS.filter((r) => st[r] > 0).map((r) => `${r} ${st[r]}`).join(', ')}`);
    say('  redirect: rewritten and forwarded by XDP itself; pass_no_neigh: rewritten, passed to the stack before ARP resolved the backend;');
    say('  pass_mtu: rewritten, passed to the stack to segment (TCP super-packets over the veth); reply_rewritten: replies given the VIP by TC egress');
    say('\ntearing down');
  } catch (e) {
    if (signal.aborted) {
      if (ctx.stopReason !== 'EPIPE') say(`\n${ctx.stopReason === 'exception' ? 'failed' : `interrupted (${ctx.stopReason})`}: tearing down`);
    } else {
      status = 1;
      say(`\n✗ ${(e as Error).message}`);
      say('tearing down');
    }
  } finally {
    // One teardown for every way out; each step runs even when one before it fails.
    await Promise.allSettled([...pending]);
    await held?.close();
    try { table?.close(); } catch (e) { log(`warning: teardown: ${(e as Error).message}`); }
    if (loader && loader.exitCode === null && loader.signalCode === null) {
      const l = loader;
      const gone = new Promise<void>((r) => l.on('close', () => r()));
      l.kill('SIGINT');
      const t = setTimeout(() => l.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(t);
      if (/detached/.test(loaderErr)) say('  loader stopped: programs detached, pins removed');
    }
    for (const s of servers) await s.stop();
    try {
      await cleanup(DEMO_TAG); // also when cut short half way through building it
      if (lab) say(`  lab ${DEMO_TAG} removed`);
    } catch (e) {
      log(`warning: teardown: ${(e as Error).message}`);
      status ||= 1;
    }
  }
  if (ctx.stopReason) return Math.max(status, exitStatusFor(ctx.stopReason));
  if (status === 0) say('done');
  return status;
}

const program = newCommand('demo')
  .description('the load balancer (xdp_dnat) end to end on a throwaway lab of three network namespaces; needs root')
  .addHelpText('after', `
Builds namespaces lbts-${DEMO_TAG}-client, -lb and -backend, runs src/loaders/xdp_dnat.ts on the
load balancer (pins in ${PIN_ROOT}/lb0-<netns inode>), carries TCP and UDP through the VIPs from the
client, prints the counters, and tears everything down however it ends (Ctrl-C, SIGTERM,
SIGHUP, a closed pipe, an error). Run it with: sudo npm start`);

await runCommand(program, demo, { signals: true });
