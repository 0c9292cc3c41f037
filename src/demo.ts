/**
 * `sudo npm start`: the load balancer end to end, on a throwaway lab.
 *
 * Builds three network namespaces (client -- load balancer -- backend),
 * runs the xdp_dnat loader on the load balancer's client-facing interface
 * (as a user would: a separate process, entered with nsenter --net), starts
 * a TCP echo server and a UDP responder on the backend, adds a UDP service
 * through the pinned maps while the loader runs, and from the client opens a
 * TCP connection to 10.96.0.10:80 and makes a UDP exchange with
 * 10.96.0.11:53, showing each step and the counters. Tears everything down
 * at the end, on failure and on Ctrl-C.
 *
 * The traffic helpers (backend servers, client exchanges) are exported for
 * the tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensureObject, objectPath, REPO_ROOT } from './cli/build.js';
import { isRoot } from './ffi/sys.js';
import {
  DEFAULT_SERVICE, DNAT_REASONS, PIN_ROOT, ServiceTable, formatService, type Service,
} from './lessons/xdp_dnat.js';
import { cleanup, dnatLab, runNs, type DnatLab } from '../scripts/lab.js';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const SERVER = `
import socket,sys,threading,select,os
ip=sys.argv[1]
tports=[int(p) for p in sys.argv[2].split(',') if p]
uports=[int(p) for p in sys.argv[3].split(',') if p]
def echo(c,a,port):
  print('tcp %d %s:%d'%(port,a[0],a[1]),flush=True)
  with c:
    while True:
      d=c.recv(65536)
      if not d: break
      c.sendall(d)
def serve(s,port):
  while True:
    c,a=s.accept(); threading.Thread(target=echo,args=(c,a,port),daemon=True).start()
for p in tports:
  s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind((ip,p)); s.listen(64)
  threading.Thread(target=serve,args=(s,p),daemon=True).start()
us=[]
for p in uports:
  u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind((ip,p)); us.append((u,p))
def stdin_eof():
  while os.read(0,64): pass
  os._exit(0)
threading.Thread(target=stdin_eof,daemon=True).start()
print('ready',flush=True)
while True:
  r=select.select([u for u,_ in us],[],[],1)[0] if us else select.select([],[],[],1)[0]
  for u,p in us:
    if u in r:
      d,a=u.recvfrom(65535); print('udp %d %s:%d'%(p,a[0],a[1]),flush=True); u.sendto(d,a)
`;

/** Echo servers in the backend namespace: TCP echoes every byte, UDP answers each datagram with itself. */
export interface BackendServers {
  /** "tcp 8080 10.0.1.2:41234" / "udp 5353 10.0.1.2:5555" for every connection/datagram so far: the peer the backend saw. */
  seen(): string[];
  /** Stops the servers (idempotent). */
  stop(): Promise<void>;
}

/**
 * Starts a TCP echo server on each of `tcp` ports and a UDP responder on
 * each of `udp` ports, bound to `ip` in namespace `ns`; resolves once they
 * listen. Throws when python3 fails or does not start within 10 s.
 */
export async function startBackendServers(ns: string, ip: string, tcp: number[], udp: number[]): Promise<BackendServers> {
  const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, PYTHON, '-c', SERVER, ip, tcp.join(','), udp.join(',')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  child.stdin!.on('error', () => { /* gone */ });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      if (out.includes('ready')) return resolve();
      if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`backend servers in ${ns}: ${err.trim().split('\n').pop() ?? 'exited'}`));
      if (Date.now() - t0 > 10_000) { child.kill('SIGKILL'); return reject(new Error(`backend servers in ${ns}: not ready after 10 s`)); }
      setTimeout(tick, 20);
    };
    tick();
  });
  let stopped: Promise<void> | undefined;
  return {
    seen: () => out.split('\n').filter((l) => l.startsWith('tcp ') || l.startsWith('udp ')),
    stop: () => {
      stopped ??= (async () => {
        child.stdin!.end();
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      })();
      return stopped;
    },
  };
}

const TCP_CLIENT = `
import socket,sys,json,threading,os
ip,port,n,tmo=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),float(sys.argv[4])
data=os.urandom(n)
s=socket.socket(); s.settimeout(tmo)
try:
  s.connect((ip,port))
except OSError as e:
  print(json.dumps({'connected':False,'error':str(e)})); sys.exit(0)
local='%s:%d'%s.getsockname(); peer='%s:%d'%s.getpeername()
def send():
  s.sendall(data); s.shutdown(socket.SHUT_WR)
th=threading.Thread(target=send); th.start()
got=bytearray()
try:
  while len(got)<n:
    d=s.recv(65536)
    if not d: break
    got+=d
except OSError as e:
  pass
th.join(tmo)
print(json.dumps({'connected':True,'local':local,'peer':peer,'sent':n,'received':len(got),'same':bytes(got)==data}))
`;

/** What a TCP exchange did. */
export interface TcpResult {
  connected: boolean;
  error?: string;
  /** The client's address:port. */
  local?: string;
  /** The server's address:port as the client's socket sees it (the VIP, when replies are translated). */
  peer?: string;
  sent?: number;
  received?: number;
  /** The echo is byte for byte what was sent. */
  same?: boolean;
}

/**
 * From namespace `ns`, connects to ip:port, sends `bytes` random bytes while
 * reading the echo, and reports. A refused or timed-out connection gives
 * connected: false, not an error. Throws when python3 fails.
 */
export async function tcpExchange(ns: string, ip: string, port: number, bytes: number, timeoutS = 3): Promise<TcpResult> {
  const { stdout } = await runNs(ns, [PYTHON, '-c', TCP_CLIENT, ip, String(port), String(bytes), String(timeoutS)], { timeoutMs: (timeoutS * 3 + 10) * 1000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as TcpResult;
}

const UDP_CLIENT = `
import socket,sys,json,os
ip,port,n,tmo=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),float(sys.argv[4])
data=os.urandom(n)
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(tmo)
s.connect((ip,port))
local='%s:%d'%s.getsockname()
s.send(data)
try:
  d,a=s.recvfrom(65535)
  print(json.dumps({'answered':True,'local':local,'from':'%s:%d'%a,'same':d==data}))
except OSError as e:
  print(json.dumps({'answered':False,'local':local,'error':str(e)}))
`;

/** What a UDP exchange did. */
export interface UdpResult {
  answered: boolean;
  local: string;
  /** Where the answer came from (a connected UDP socket only accepts the address it sent to). */
  from?: string;
  same?: boolean;
  error?: string;
}

/** From namespace `ns`, sends one datagram of `bytes` random bytes to ip:port and waits for it to come back. Throws when python3 fails. */
export async function udpExchange(ns: string, ip: string, port: number, bytes = 32, timeoutS = 2): Promise<UdpResult> {
  const { stdout } = await runNs(ns, [PYTHON, '-c', UDP_CLIENT, ip, String(port), String(bytes), String(timeoutS)], { timeoutMs: (timeoutS + 10) * 1000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as UdpResult;
}

/** The UDP service the demo adds while the loader runs. */
export const DEMO_UDP_SERVICE: Service = { vip: '10.96.0.11', port: 53, proto: 'udp', backend: { ip: '10.244.1.5', port: 5353 } };

async function main(): Promise<number> {
  const say = (s: string) => process.stdout.write(`${s}\n`);
  if (!isRoot()) { say('error: the demo builds network namespaces and loads BPF programs: run it as root (sudo npm start)'); return 1; }
  const tag = 'dnatdemo';
  const pinDir = join(PIN_ROOT, 'demo');
  let lab: DnatLab | undefined;
  let loader: ChildProcess | undefined;
  let loaderErr = '';
  let servers: BackendServers | undefined;
  let table: ServiceTable | undefined;
  let interrupted = false;
  let pending: Promise<unknown> | undefined; // a step under way (lab, servers), to let settle before tearing down
  let tornDown: Promise<void> | undefined;
  const teardown = () => (tornDown ??= tearDownOnce());
  const tearDownOnce = async () => {
    await pending?.catch(() => undefined);
    table?.close();
    table = undefined;
    if (loader && loader.exitCode === null && loader.signalCode === null) {
      const gone = new Promise<void>((r) => loader!.on('close', () => r()));
      loader.kill('SIGINT');
      const t = setTimeout(() => loader?.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(t);
      if (/detached/.test(loaderErr)) say('  loader stopped: programs detached, pins removed');
    }
    await servers?.stop();
    if (lab) say(`  lab ${tag} removed`);
    await cleanup(tag); // also when interrupted half way through building it
    lab = undefined;
  };
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    say('\ninterrupted: tearing down');
    void teardown().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const step = (n: number, text: string) => say(`\n[${n}/7] ${text}`);
  try {
    step(1, 'build the BPF object');
    const had = existsSync(objectPath('xdp_dnat'));
    say(`  ${ensureObject('xdp_dnat')} (${had ? 'up to date or rebuilt' : 'built now'})`);

    step(2, 'build the lab: client -- load balancer -- backend, in three network namespaces');
    lab = await (pending = dnatLab(tag));
    say(`  client  ${lab.client}: ${lab.clientIf} ${lab.clientIp}, routes ${lab.vipNet} (the service network) via ${lab.lbClientIp}`);
    say(`  lb      ${lab.lb}: ${lab.lbClientIf} ${lab.lbClientIp} (clients) | ${lab.lbBackendIf} ${lab.lbBackendIp} (backends), forwarding on`);
    say(`  backend ${lab.backend}: ${lab.backendIf} ${lab.backendIp}`);

    step(3, 'start the backend: TCP echo on :8080, UDP responder on :5353');
    servers = await (pending = startBackendServers(lab.backend, lab.backendIp, [8080], [5353]));
    say(`  listening on ${lab.backendIp}:8080/tcp and ${lab.backendIp}:5353/udp`);

    step(4, `run the loader on ${lab.lbClientIf} in ${lab.lb} (nsenter --net, so its pins are visible here)`);
    const cmd = ['nsenter', `--net=/run/netns/${lab.lb}`, process.execPath, '--import', 'tsx', join(REPO_ROOT, 'src', 'loaders', 'xdp_dnat.ts'),
      lab.lbClientIf, '--pin-dir', pinDir, '--interval', '3600'];
    say(`  $ ${cmd.slice(0, 2).join(' ')} tsx src/loaders/xdp_dnat.ts ${cmd.slice(6).join(' ')}`);
    loader = spawn(cmd[0], cmd.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let shown = 0;
    loader.stderr!.setEncoding('utf8').on('data', (d: string) => {
      loaderErr += d;
      const lines = loaderErr.split('\n');
      for (; shown < lines.length - 1; shown++) say(`  loader: ${lines[shown]}`);
    });
    await new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      const tick = () => {
        if (loaderErr.includes('Ctrl-C to stop')) return resolve();
        if (loader!.exitCode !== null) return reject(new Error(`the loader exited: ${loaderErr.trim().split('\n').pop()}`));
        if (Date.now() - t0 > 60_000) return reject(new Error('the loader did not start within 60 s'));
        setTimeout(tick, 50);
      };
      tick();
    });

    step(5, 'add a UDP service while it runs, through the pinned maps (what scripts/services.ts does)');
    table = ServiceTable.openPinned(pinDir);
    table.add(DEMO_UDP_SERVICE);
    say(`  added ${formatService(DEMO_UDP_SERVICE)}`);
    say(`  (by hand: sudo tsx scripts/services.ts --pin-dir ${pinDir} add 10.96.0.11:53/udp=10.244.1.5:5353)`);

    step(6, `from the client: TCP to ${DEFAULT_SERVICE.vip}:${DEFAULT_SERVICE.port}, UDP to ${DEMO_UDP_SERVICE.vip}:${DEMO_UDP_SERVICE.port}`);
    const t = await tcpExchange(lab.client, DEFAULT_SERVICE.vip, DEFAULT_SERVICE.port, 256 * 1024);
    if (!t.connected) throw new Error(`TCP connection to ${DEFAULT_SERVICE.vip}:${DEFAULT_SERVICE.port} failed: ${t.error}`);
    say(`  ✓ TCP connected: client ${t.local} → ${t.peer} (the client's socket sees the VIP: replies were translated back)`);
    if (!t.same) throw new Error(`TCP echo: sent ${t.sent} bytes, got ${t.received} back${t.received === t.sent ? ', different' : ''}`);
    say(`  ✓ TCP data both ways: sent ${t.sent} bytes, got the same ${t.received} bytes back`);
    const sawTcp = servers.seen().find((l) => l.startsWith('tcp 8080 '));
    say(`  ✓ the backend accepted the connection from ${sawTcp?.split(' ')[2]} (the client's real address; ${DEFAULT_SERVICE.backend.ip}:${DEFAULT_SERVICE.backend.port} behind the VIP)`);
    const u = await udpExchange(lab.client, DEMO_UDP_SERVICE.vip, DEMO_UDP_SERVICE.port);
    if (!u.answered) throw new Error(`UDP to ${DEMO_UDP_SERVICE.vip}:${DEMO_UDP_SERVICE.port}: no answer (${u.error})`);
    say(`  ✓ UDP answered: client ${u.local} → ${u.from}, ${u.same ? 'same bytes back' : 'DIFFERENT bytes'}`);
    const sawUdp = servers.seen().find((l) => l.startsWith('udp 5353 '));
    say(`  ✓ the backend got the datagram from ${sawUdp?.split(' ')[2]}`);

    step(7, 'counters (per-CPU maps, summed)');
    for (const e of table.list()) say(`  ${formatService(e).padEnd(40)} ${String(e.packets).padStart(6)} packets ${String(e.bytes).padStart(9)} bytes`);
    const st = table.stats();
    say(`  ${DNAT_REASONS.filter((r) => st[r] > 0).map((r) => `${r} ${st[r]}`).join(', ')}`);
    say('  redirect: rewritten and forwarded by XDP itself; pass_no_neigh: rewritten, passed to the stack before ARP resolved the backend;');
    say('  pass_mtu: rewritten, passed to the stack to segment (TCP super-packets over the veth); reply_rewritten: replies given the VIP by TC egress');

    say('\ntearing down');
    await teardown();
    say('done');
    return 0;
  } catch (e) {
    if (interrupted) { await teardown().catch(() => undefined); return 130; } // what failed was cut short by Ctrl-C
    say(`\n✗ ${(e as Error).message}`);
    say('tearing down');
    await teardown().catch((e2: Error) => say(`  teardown: ${e2.message}`));
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((code) => process.exit(code), (e: Error) => { console.error(`error: ${e.message}`); process.exit(1); });
}
