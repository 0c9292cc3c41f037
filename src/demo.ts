/**
 * `sudo npm start`: the load balancer end to end, on a throwaway lab.
 *
 * Builds three network namespaces (client -- load balancer -- backends),
 * starts two backends (10.244.1.5 and 10.244.1.6: TCP echo servers and UDP
 * responders in the backend namespace), runs the xdp_dnat loader on the
 * load balancer's client-facing interface (as a user would: a separate
 * process, entered with nsenter --net, with --pin-dir) with both backends
 * behind 10.96.0.10:80, adds a UDP service through the pinned maps while the
 * loader runs, opens TCP connections to the VIP from the client and shows
 * how Maglev spread them over the two backends, makes a UDP exchange with
 * 10.96.0.11:53, removes one backend while held connections to the other
 * carry on, then restarts the loader (SIGTERM, and a new one on the same
 * pin directory, which adopts the maps and swaps its programs into the
 * pinned links) while held connections exchange data, then the counters.
 *
 * Tears everything down (the loaders, the servers, the pins, the lab)
 * however it ends: done, failed, an exception, SIGINT/SIGTERM/SIGHUP, or
 * its reader gone (`npm start | head`). Killed outright (SIGKILL), its
 * loader still stops (setpriv --pdeathsig) and keeps its pins (--pin-dir),
 * so a reaper (a shell waiting for the demo's end on a pipe) removes them
 * once the loaders are gone; only the lab's namespaces stay, removed by
 * the next run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureObject, objectPath, REPO_ROOT } from './cli/build.js';
import { exitStatusFor, newCommand, runCommand, type CommandContext } from './cli/command.js';
import { tsxCommand } from './cli/hint.js';
import { isRoot } from './ffi/sys.js';
import { DEFAULT_SERVICE } from './lessons/xdp_dnat.js';
import { PIN_ROOT } from './lessons/xdp_dnat/pins.js';
import { ServiceTable } from './lb/table.js';
import { describeService, formatService, type Service } from './lb/model.js';
import { DNAT_REASONS, LB_LINKS, closeDataPlaneMaps, listConnections, openPinnedDataPlane, readDnatStats, type Connection } from './lb/dataplane.js';
import { Link } from './link.js';
import { cleanup, dnatLab, type DnatLab } from './lab/topology.js';
import { run } from './lab/netns.js';
import { holdTcpConnections, startBackendServers, tcpExchange, udpExchange, type BackendServers, type HeldConnections } from './lab/traffic.js';

/** The demo lab's tag: its namespaces are lbts-dnatdemo-client, -lb and -backend. */
const DEMO_TAG = 'dnatdemo';
/** The second backend's address (in the backend namespace, next to lab.backendIp). */
const SECOND_BACKEND = '10.244.1.6';
/** The demo's TCP service: the lesson's VIP with two backends. */
const DEMO_TCP_SERVICE: Service = {
  vip: DEFAULT_SERVICE.vip, port: DEFAULT_SERVICE.port, proto: 'tcp', backends: [{ ip: '10.244.1.5', port: 8080 }, { ip: SECOND_BACKEND, port: 8080 }],
};
/** TCP connections opened to show the spread. */
const SPREAD_CONNECTIONS = 8;
/** TCP connections held open while a backend is removed, and again while the loader restarts. */
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

/**
 * Where the demo's loaders pin their maps and links (--pin-dir: kept when a
 * loader exits, adopted by the next one). The reaper removes it.
 */
const DEMO_PIN_DIR = join(PIN_ROOT, 'demo');

/**
 * The reaper: a shell that ignores the terminal's signals and waits for the
 * demo to close its stdin (the demo closing it, or dying, even by SIGKILL:
 * the kernel closes the pipe). It reads the pids of the loaders, one a line,
 * waits for them to exit (SIGKILL after 10 s), then removes the pin
 * directory (and the empty ones above it): the pinned links go with their
 * pins, so the programs are detached once no loader holds them.
 */
const REAPER = `trap '' INT TERM HUP
pids=
while read -r pid; do pids="$pids $pid"; done
for p in $pids; do
  n=0
  while kill -0 "$p" 2>/dev/null; do
    n=$((n + 1)); [ "$n" -eq 100 ] && kill -KILL "$p" 2>/dev/null
    sleep 0.1
  done
done
rm -rf -- "$1"
rmdir -- "\${1%/*}" 2>/dev/null && rmdir -- "\${1%/*/*}" 2>/dev/null
exit 0`;

/** Starts the reaper of `dir`; tell() hands it a loader's pid; done() closes its stdin and waits for it. */
function startReaper(dir: string): { tell(pid: number): void; done(): Promise<void> } {
  const child = spawn('sh', ['-c', REAPER, 'lbts-demo-reaper', dir], { stdio: ['pipe', 'ignore', 'inherit'] });
  child.stdin!.on('error', () => { /* gone */ });
  const gone = new Promise<void>((r) => child.on('close', () => r()));
  return {
    tell(pid) { child.stdin!.write(`${pid}\n`); },
    async done() { child.stdin!.end(); await gone; },
  };
}

/** What a restart must keep: the connection entries, and the program the pinned xdp link runs. */
function pinnedState(dir: string): { connections: Connection[]; progId: number } {
  const dp = openPinnedDataPlane(dir);
  let connections: Connection[];
  try { connections = listConnections(dp.conntrack); } finally { closeDataPlaneMaps(dp); }
  const link = Link.openPinned(join(dir, LB_LINKS.forward), 'the pinned xdp link');
  if (!link) throw new Error(`no xdp link pinned in ${dir}`);
  try { return { connections, progId: link.info().progId }; } finally { link.release(); }
}

/** A loader the demo runs; its stderr lines are shown as "loader: ...". */
interface DemoLoader {
  child: ChildProcess;
  /** The command line, as a user would type it. */
  shown: string;
  /** Its stderr so far. */
  stderr(): string;
  /** Resolves when it says "Ctrl-C to stop"; rejects when it exits first or takes over 60 s. */
  ready(signal: AbortSignal): Promise<void>;
  /** Resolves when it has exited. */
  gone: Promise<void>;
}

/**
 * Starts the loader in the lab's lb namespace with --pin-dir `dir` (and
 * `args`); it gets SIGINT when this process dies (setpriv --pdeathsig).
 */
function spawnLoader(lab: DnatLab, dir: string, args: string[], say: (s: string) => void): DemoLoader {
  const cmd = ['setpriv', '--pdeathsig', 'SIGINT', 'nsenter', `--net=/run/netns/${lab.lb}`,
    process.execPath, '--import', 'tsx', join(REPO_ROOT, 'src', 'loaders', 'xdp_dnat.ts'),
    lab.lbClientIf, '--interval', '3600', '--pin-dir', dir, ...args];
  const child = spawn(cmd[0], cmd.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  let shown = 0;
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    const lines = err.split('\n');
    for (; shown < lines.length - 1; shown++) say(`  loader: ${lines[shown]}`);
  });
  child.on('error', (e) => { err += `\n${e.message}\n`; });
  const gone = new Promise<void>((r) => child.on('close', () => r()));
  return {
    child, gone,
    shown: `nsenter --net=/run/netns/${lab.lb} ${tsxCommand('src/loaders/xdp_dnat.ts', cmd.slice(9))}`,
    stderr: () => err,
    ready: (signal) => unlessAborted(new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      const tick = () => {
        if (signal.aborted) return resolve();
        if (err.includes('Ctrl-C to stop')) return resolve();
        if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`the loader exited: ${err.trim().split('\n').pop()}`));
        if (Date.now() - t0 > 60_000) return reject(new Error('the loader did not start within 60 s'));
        setTimeout(tick, 50);
      };
      tick();
    }), signal),
  };
}

/** Stops `l` with `sig` (SIGKILL after 10 s) and waits for it. */
async function stopLoader(l: DemoLoader, sig: NodeJS.Signals): Promise<void> {
  if (l.child.exitCode !== null || l.child.signalCode !== null) return;
  l.child.kill(sig);
  const t = setTimeout(() => l.child.kill('SIGKILL'), 10_000);
  await l.gone;
  clearTimeout(t);
}

async function demo(ctx: CommandContext): Promise<number> {
  const { out, signal, log } = ctx;
  const say = (s: string) => out.line(s);
  if (!isRoot()) { log('error: the demo builds network namespaces and loads BPF programs: run it as root (sudo npm start)'); return 1; }
  let lab: DnatLab | undefined;
  let loader: DemoLoader | undefined;
  let reaper: ReturnType<typeof startReaper> | undefined;
  const servers: BackendServers[] = [];
  let table: ServiceTable | undefined;
  const helds: HeldConnections[] = [];
  // Steps under way (building the lab, starting the servers): teardown lets them settle first.
  const pending = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    pending.add(p);
    p.catch(() => undefined).finally(() => pending.delete(p));
    return unlessAborted(p, signal);
  };
  const step = (n: number, text: string) => say(`\n[${n}/9] ${text}`);
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

    step(4, `run the loader on ${L.lbClientIf} in ${L.lb} (nsenter --net, so its pins are visible here), with --pin-dir so that a restart keeps its state`);
    // A previous demo's pins (its reaper always removes them; this is in case something went very wrong).
    rmSync(DEMO_PIN_DIR, { recursive: true, force: true });
    reaper = startReaper(DEMO_PIN_DIR);
    const first = loader = spawnLoader(L, DEMO_PIN_DIR, ['--service', formatService(DEMO_TCP_SERVICE)], say);
    if (first.child.pid !== undefined) reaper.tell(first.child.pid);
    say(`  $ ${first.shown}`);
    await first.ready(signal);

    step(5, 'add a UDP service while it runs, through the pinned maps (what scripts/services.ts does)');
    const tbl = table = ServiceTable.openPinned(DEMO_PIN_DIR);
    tbl.add(DEMO_UDP_SERVICE);
    say(`  added ${describeService(DEMO_UDP_SERVICE)}`);
    say(`  (by hand: ${tsxCommand('scripts/services.ts', ['--pin-dir', DEMO_PIN_DIR, 'add', formatService(DEMO_UDP_SERVICE)])})`);

    step(6, `from the client: TCP to ${DEFAULT_SERVICE.vip}:${DEFAULT_SERVICE.port} (two backends), UDP to ${DEMO_UDP_SERVICE.vip}:${DEMO_UDP_SERVICE.port}`);
    const t = await unlessAborted(tcpExchange(L.client, DEFAULT_SERVICE.vip, DEFAULT_SERVICE.port, 256 * 1024, 3, signal), signal);
    if (!t.connected) throw new Error(`TCP connection to ${DEFAULT_SERVICE.vip}:${DEFAULT_SERVICE.port} failed: ${t.error}`);
    say(`  ✓ TCP connected: client ${t.local} → ${t.peer} (the client's socket sees the VIP: replies were translated back)`);
    if (!t.same) throw new Error(`TCP echo: sent ${t.sent} bytes, got ${t.received} back${t.received === t.sent ? ', different' : ''}`);
    say(`  ✓ TCP data both ways: sent ${t.sent} bytes, got the same ${t.received} bytes back`);
    const firstOn = backendOf(t.local!);
    say(`  ✓ backend ${firstOn >= 0 ? backendName(firstOn) : '(not printed yet)'}:8080 accepted the connection from ${t.local} (the client's real address)`);
    const counts = await spread(SPREAD_CONNECTIONS);
    say(`  ✓ ${SPREAD_CONNECTIONS} more connections, spread by Maglev over the 5-tuples: ${counts[0]} on ${L.backendIp}:8080, ${counts[1]} on ${SECOND_BACKEND}:8080`);
    const u = await unlessAborted(udpExchange(L.client, DEMO_UDP_SERVICE.vip, DEMO_UDP_SERVICE.port, 32, 2, signal), signal);
    if (!u.answered) throw new Error(`UDP to ${DEMO_UDP_SERVICE.vip}:${DEMO_UDP_SERVICE.port}: no answer (${u.error})`);
    say(`  ✓ UDP answered: client ${u.local} → ${u.from}, ${u.same ? 'same bytes back' : 'DIFFERENT bytes'}`);
    const sawUdp = srv.seen().find((x) => x.startsWith('udp 5353 '));
    say(`  ✓ the backend got the datagram from ${sawUdp?.split(' ')[2]}`);

    step(7, `remove backend ${SECOND_BACKEND}:8080 while the loader runs (ServiceTable.change on the pinned maps)`);
    const hold = await unlessAborted(holdTcpConnections(L.client, DEMO_TCP_SERVICE.vip, DEMO_TCP_SERVICE.port, HELD_CONNECTIONS), signal);
    helds.push(hold);
    if (!(await unlessAborted(hold.exchange(1, 1000, 0), signal)).every(Boolean)) throw new Error('held connections: an exchange failed before any change');
    for (let w = 0; w < 40 && !hold.locals.every((l) => backendOf(l) >= 0); w++) await unlessAborted(new Promise((r) => setTimeout(r, 50)), signal);
    const heldOn = hold.locals.map(backendOf);
    const onFirst = heldOn.filter((b) => b === 0).length;
    say(`  holding ${HELD_CONNECTIONS} open connections: ${onFirst} on ${L.backendIp}:8080, ${heldOn.filter((b) => b === 1).length} on ${SECOND_BACKEND}:8080`);
    const kept: Service = { ...DEMO_TCP_SERVICE, backends: [DEMO_TCP_SERVICE.backends[0]] };
    tbl.change(kept);
    say(`  changed ${describeService(kept)}`);
    say(`  (by hand: ${tsxCommand('scripts/services.ts', ['--pin-dir', DEMO_PIN_DIR, 'change', formatService(kept)])})`);
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

    step(8, 'restart the loader while connections exchange data: its maps and links stay pinned (--pin-dir) and the next loader adopts them');
    tbl.change(DEMO_TCP_SERVICE);
    say(`  put ${SECOND_BACKEND}:8080 back: changed ${describeService(DEMO_TCP_SERVICE)}`);
    const hold2 = await unlessAborted(holdTcpConnections(L.client, DEMO_TCP_SERVICE.vip, DEMO_TCP_SERVICE.port, HELD_CONNECTIONS), signal);
    helds.push(hold2);
    if (!(await unlessAborted(hold2.exchange(1, 1000, 0), signal)).every(Boolean)) throw new Error('held connections: an exchange failed before the restart');
    for (let w = 0; w < 40 && !hold2.locals.every((l) => backendOf(l) >= 0); w++) await unlessAborted(new Promise((r) => setTimeout(r, 50)), signal);
    const on2 = hold2.locals.map(backendOf);
    const before = pinnedState(DEMO_PIN_DIR);
    const servicesBefore = tbl.services().map(describeService);
    say(`  holding ${HELD_CONNECTIONS} open connections: ${on2.filter((b) => b === 0).length} on ${L.backendIp}:8080, ${on2.filter((b) => b === 1).length} on ${SECOND_BACKEND}:8080; ${before.connections.length} connection entries; the pinned xdp link runs program id ${before.progId}`);
    // Round after round of 1000 bytes echoed on every held connection, while one loader stops and the next starts.
    const rounds = { old: 0, between: 0, new: 0 };
    let phase: keyof typeof rounds = 'old';
    let pumping = true;
    let broken: string | undefined;
    const pump = (async () => {
      while (pumping && !signal.aborted) {
        const ok = await hold2.exchange(1, 1000, 0);
        if (!ok.every(Boolean)) { broken = hold2.locals.filter((_, i) => !ok[i]).join(', '); return; }
        rounds[phase]++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })().catch((e: Error) => { broken = e.message; });
    const until = async (what: () => boolean) => {
      while (!what() && broken === undefined) await unlessAborted(new Promise((r) => setTimeout(r, 50)), signal);
    };
    await until(() => rounds.old >= 3);
    const old = loader!;
    say(`  $ kill -TERM ${old.child.pid ?? '?'}   (the loader, while the held connections exchange data)`);
    await unlessAborted(stopLoader(old, 'SIGTERM'), signal);
    phase = 'between';
    const next = loader = spawnLoader(L, DEMO_PIN_DIR, [], say);
    if (next.child.pid !== undefined) reaper.tell(next.child.pid);
    say(`  $ ${next.shown}   (no --service: it keeps the adopted services)`);
    await next.ready(signal);
    phase = 'new';
    await until(() => rounds.new >= 3);
    pumping = false;
    await unlessAborted(pump, signal);
    if (broken !== undefined) throw new Error(`held connections broke across the restart: ${broken}`);
    if (!/adopted \d+ pinned maps/.test(next.stderr()) || !next.stderr().includes('replaced the program in place')) throw new Error('the new loader did not adopt the pinned maps and links');
    say(`  ✓ all ${HELD_CONNECTIONS} held connections echoed their 1000 bytes every round, none reset: ${rounds.old} rounds under the old loader, ${rounds.between} while it stopped and the new one started, ${rounds.new} under the new one`);
    const now = pinnedState(DEMO_PIN_DIR);
    tbl.refresh();
    const servicesAfter = tbl.services().map(describeService);
    if (servicesAfter.join('\n') !== servicesBefore.join('\n')) throw new Error(`the services changed across the restart: ${servicesAfter.join('; ')}`);
    const moved = hold2.locals.filter((l, i) => now.connections.find((c) => c.client === l)?.backend !== `${backendName(on2[i])}:8080`);
    if (moved.length) throw new Error(`held connections without their connection entry or on another backend after the restart: ${moved.join(', ')}`);
    say(`  ✓ adopted, not rebuilt: the same ${servicesAfter.length} services; each held connection's entry kept, on its backend; ${before.connections.length} connection entries before, ${now.connections.length} after`);
    if (now.progId === before.progId) throw new Error(`the pinned xdp link still runs program ${before.progId}: not replaced`);
    say(`  ✓ the pinned xdp link now runs program id ${now.progId} (was ${before.progId}): swapped in place with BPF_LINK_UPDATE, never detached`);
    await hold2.close();

    step(9, 'counters (per-CPU maps, summed)');
    for (const e of tbl.list()) say(`  ${describeService(e).padEnd(40)} ${String(e.packets).padStart(6)} packets ${String(e.bytes).padStart(9)} bytes`);
    const dp = openPinnedDataPlane(DEMO_PIN_DIR);
    let st: ReturnType<typeof readDnatStats>;
    try { st = readDnatStats(dp.stats, dp.flowCache); } finally { closeDataPlaneMaps(dp); }
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
    for (const h of helds) await h.close();
    try { table?.close(); } catch (e) { log(`warning: teardown: ${(e as Error).message}`); }
    if (loader) await stopLoader(loader, 'SIGINT'); // it keeps its pins (--pin-dir): the reaper removes them
    if (reaper) {
      await reaper.done();
      if (existsSync(DEMO_PIN_DIR)) { log(`warning: teardown: ${DEMO_PIN_DIR} is still there`); status ||= 1; }
      else say('  loader stopped: programs detached, pins removed');
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
load balancer (pins in ${DEMO_PIN_DIR}), carries TCP and UDP through the VIPs from the
client, removes a backend and restarts the loader while connections carry on, prints the counters, and tears everything down however it ends (Ctrl-C, SIGTERM,
SIGHUP, a closed pipe, an error). Run it with: sudo npm start`);

await runCommand(program, demo, { signals: true });
