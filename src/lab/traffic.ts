/**
 * Real traffic from inside the lab's network namespaces: senders, a UDP
 * listener, echo servers on a backend and client exchanges with them.
 *
 * The helpers run small inline python3 scripts with `ip netns exec`, with
 * bounded counts and timeouts, and only from lab namespaces (`lbts-*`, or
 * another prefix a lab was built with in this process): those have routes
 * only to the lab's own addresses, so no packet ever leaves the lab. Needs
 * root and python3.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseIpv4, parseIpv6 } from '../codec.js';
import { CommandError, runNs } from './netns.js';

/** The system python when there is one: a pyenv shim costs ~100 ms per start. */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** The name prefixes of lab namespaces: `lbts-`, and those labs were built with in this process. */
const labPrefixes = new Set(['lbts-']);

/** Lets traffic be sent from namespaces named `<prefix>...` (the lab builders call it with their prefix). */
export function allowTrafficFrom(prefix: string): void {
  labPrefixes.add(prefix);
}

function labNs(ns: string): void {
  const ok = [...labPrefixes].some((p) => ns.startsWith(p) && /^[a-z0-9-]+$/.test(ns.slice(p.length)) && ns.length > p.length);
  if (!ok) throw new Error(`traffic is only sent from lab namespaces (${[...labPrefixes].map((p) => `${p}*`).join(', ')}), not '${ns}'`);
}
function int(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer in ${min}..${max}, not ${v}`);
}

const UDP_SEND = `
import socket,sys,time
ip,port,n,size,src=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4]),int(sys.argv[5])
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(('',src))
p=b'x'*size
for i in range(n):
  s.sendto(p,(ip,port))
  if i==0 and n>32: time.sleep(0.02)
`;

/**
 * Sends `count` UDP datagrams of `payloadLen` bytes (each 'x') from namespace
 * `ns` to dstIp:dstPort, from `srcPort` (0: any). For bursts over 32 it pauses
 * 20 ms after the first datagram so ARP resolves and nothing is dropped in
 * the neighbour queue. Resolves once all are sent. Throws on a non-lab
 * namespace, a bad address or out-of-range numbers (count <= 100000), or
 * when python3 fails (e.g. no route: ENETUNREACH).
 */
export async function sendUdp(ns: string, dstIp: string, dstPort: number, count: number, payloadLen = 16, srcPort = 0): Promise<void> {
  labNs(ns);
  parseIpv4(dstIp);
  int('dstPort', dstPort, 1, 65535);
  int('count', count, 0, 100_000);
  int('payloadLen', payloadLen, 0, 65_507);
  int('srcPort', srcPort, 0, 65535);
  await runNs(ns, [PYTHON, '-c', UDP_SEND, dstIp, String(dstPort), String(count), String(payloadLen), String(srcPort)],
    { timeoutMs: 15_000 + count });
}

const TCP_CONNECT = `
import socket,sys
ip,port,n,size,src=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4]),int(sys.argv[5])
ok=0
for i in range(n):
  s=socket.socket(); s.settimeout(1)
  if src: s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('',src))
  try:
    s.connect((ip,port)); ok+=1
    if size: s.sendall(b'x'*size)
  except OSError: pass
  s.close()
print(ok)
`;

/**
 * Opens `count` TCP connections one after the other from namespace `ns` to
 * dstIp:dstPort (1 s connect timeout each), sends `payloadLen` bytes on each
 * that connects, and closes it. Resolves with how many connected (a refused
 * or timed-out connection counts 0, it is not an error). With `srcPort`
 * every connection binds that port (SO_REUSEADDR). Throws on a non-lab
 * namespace, a bad address, out-of-range numbers (count <= 1000), or when
 * python3 itself fails.
 */
export async function sendTcpConnect(ns: string, dstIp: string, dstPort: number, count = 1, payloadLen = 0, srcPort = 0): Promise<number> {
  labNs(ns);
  parseIpv4(dstIp);
  int('dstPort', dstPort, 1, 65535);
  int('count', count, 0, 1000);
  int('payloadLen', payloadLen, 0, 1 << 20);
  int('srcPort', srcPort, 0, 65535);
  const { stdout } = await runNs(ns, [PYTHON, '-c', TCP_CONNECT, dstIp, String(dstPort), String(count), String(payloadLen), String(srcPort)],
    { timeoutMs: 15_000 + count * 1500 });
  return Number(stdout.trim());
}

/** The earlier name of sendTcpConnect, kept for existing callers. */
export const tcpConnect = sendTcpConnect;

/**
 * Pings `ip` `count` times from namespace `ns` (`ping -4`, or `ping -6`
 * for an IPv6 address such as a pair lab's hostIp6; 10 ms apart, deadline
 * count/100 + 2 s) and resolves with the number of replies; lost replies and
 * an unreachable network give a smaller number or 0, not an error. Throws on
 * a non-lab namespace, a bad address, count outside 1..1000, or when ping
 * cannot run (e.g. the namespace does not exist).
 */
export async function ping(ns: string, ip: string, count = 3): Promise<number> {
  labNs(ns);
  const family = ip.includes(':') ? '-6' : '-4';
  if (family === '-6') parseIpv6(ip);
  else parseIpv4(ip);
  int('count', count, 1, 1000);
  const deadline = String(Math.ceil(count / 100) + 2);
  let out: string;
  try {
    out = (await runNs(ns, ['ping', family, '-n', '-q', '-c', String(count), '-i', '0.01', '-W', '1', '-w', deadline, ip], { timeoutMs: 30_000 })).stdout;
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    if (/unreachable/i.test(e.stderr)) return 0;
    if (!/ received/.test(e.stdout)) throw e;
    out = e.stdout;
  }
  return Number(/(\d+) (?:packets )?received/.exec(out)?.[1] ?? 0);
}

/** What a UDP listener received. */
export interface UdpReceived {
  /** Datagrams received. */
  count: number;
  /** Payload bytes received. */
  bytes: number;
  /** Distinct senders, "ip:port", sorted. */
  sources: string[];
}

/** A running UDP listener (a python3 process). */
export interface UdpListener {
  /** The port it is bound to (the chosen one when asked for port 0). */
  port: number;
  /** Stops listening (after draining the socket) and resolves with what arrived. Idempotent. */
  stop(): Promise<UdpReceived>;
  [Symbol.asyncDispose](): Promise<void>;
}

const UDP_LISTEN = `
import socket,sys,select,json,time,os
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,1<<22)
s.bind((sys.argv[1],int(sys.argv[2])))
print('ready',s.getsockname()[1],flush=True)
st={'n':0,'b':0};src=set();end=time.time()+float(sys.argv[3])
def take():
  d,a=s.recvfrom(65535);st['n']+=1;st['b']+=len(d);src.add('%s:%d'%a)
while True:
  left=end-time.time()
  if left<=0: break
  r=select.select([s,0],[],[],left)[0]
  if s in r: take()
  if 0 in r and not os.read(0,64): break
s.setblocking(False)
try:
  while True: take()
except BlockingIOError: pass
print(json.dumps({'count':st['n'],'bytes':st['b'],'sources':sorted(src)}),flush=True)
`;

/**
 * Starts a UDP listener bound to ip:port inside namespace `ns`, or in the
 * root namespace when `ns` is null (it only receives, so e.g. a pair lab's
 * hostIp is fine). Resolves once the socket is bound. It stops by itself
 * after `maxMs` (default 30 s, at most 300 s). Throws on a bad address or
 * port, or when the listener cannot bind or does not start within 10 s.
 */
export async function listenUdp(ns: string | null, ip: string, port = 0, maxMs = 30_000): Promise<UdpListener> {
  if (ns !== null && !ns) throw new Error('listenUdp: empty namespace name');
  parseIpv4(ip);
  int('port', port, 0, 65535);
  int('maxMs', maxMs, 1, 300_000);
  const argv = [PYTHON, '-c', UDP_LISTEN, ip, String(port), String(maxMs / 1000)];
  const cmd = ns === null ? argv : ['ip', 'netns', 'exec', ns, ...argv];
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  child.stdin.on('error', () => { /* exited already */ });
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (e) => { stderr += e.message; resolve(null); });
    child.on('close', (code) => resolve(code));
  });
  const failure = (why: string) => {
    const last = stderr.split('\n').map((l) => l.trim()).filter(Boolean).pop();
    return new Error(`UDP listener on ${ip}:${port}${ns ? ` in ${ns}` : ''}: ${last ?? why}`);
  };
  const bound = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(failure('did not start within 10 s')); }, 10_000);
    const check = () => {
      const m = /^ready (\d+)$/m.exec(stdout);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    };
    child.stdout.on('data', check);
    void exited.then(() => { clearTimeout(timer); check(); reject(failure('exited before it was ready')); });
  });
  let result: Promise<UdpReceived> | undefined;
  const stop = (): Promise<UdpReceived> => {
    result ??= (async () => {
      child.stdin.end();
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
      const line = stdout.trim().split('\n').pop() ?? '';
      if (!line.startsWith('{')) throw failure('no result');
      return JSON.parse(line) as UdpReceived;
    })();
    return result;
  };
  return { port: bound, stop, [Symbol.asyncDispose]: async () => { await stop().catch(() => undefined); } };
}

// ---------------------------------------------------------------- echo servers and exchanges

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
 * listen. Throws on a non-lab namespace, a bad address or port, or when
 * python3 fails or does not start within 10 s.
 */
export async function startBackendServers(ns: string, ip: string, tcp: number[], udp: number[]): Promise<BackendServers> {
  labNs(ns);
  parseIpv4(ip);
  for (const p of [...tcp, ...udp]) int('port', p, 1, 65535);
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
 * connected: false, not an error. Throws on a non-lab namespace, bad
 * numbers, when python3 fails, or when `signal` aborts (the client is killed).
 */
export async function tcpExchange(ns: string, ip: string, port: number, bytes: number, timeoutS = 3, signal?: AbortSignal): Promise<TcpResult> {
  labNs(ns);
  parseIpv4(ip);
  int('port', port, 1, 65535);
  int('bytes', bytes, 0, 1 << 26);
  const { stdout } = await runNs(ns, [PYTHON, '-c', TCP_CLIENT, ip, String(port), String(bytes), String(timeoutS)], { timeoutMs: (timeoutS * 3 + 10) * 1000, signal });
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

/**
 * From namespace `ns`, sends one datagram of `bytes` random bytes to ip:port
 * and waits for it to come back. Throws on a non-lab namespace, bad numbers,
 * when python3 fails, or when `signal` aborts (the client is killed).
 */
export async function udpExchange(ns: string, ip: string, port: number, bytes = 32, timeoutS = 2, signal?: AbortSignal): Promise<UdpResult> {
  labNs(ns);
  parseIpv4(ip);
  int('port', port, 1, 65535);
  int('bytes', bytes, 0, 65_507);
  const { stdout } = await runNs(ns, [PYTHON, '-c', UDP_CLIENT, ip, String(port), String(bytes), String(timeoutS)], { timeoutMs: (timeoutS + 10) * 1000, signal });
  return JSON.parse(stdout.trim().split('\n').pop()!) as UdpResult;
}

/**
 * ping() for IPv6 only: pings `ip` with `ping -6` from namespace `ns` and
 * resolves with the number of replies. Throws like ping(), and on an
 * address that is not IPv6.
 */
export async function ping6(ns: string, ip: string, count = 3): Promise<number> {
  parseIpv6(ip);
  return ping(ns, ip, count);
}

/** The client of holdTcpConnections. */
const HELD = `
import socket,sys,json,os,time
ip,port,n=sys.argv[1],int(sys.argv[2]),int(sys.argv[3])
socks=[]
for i in range(n):
  s=socket.socket(); s.settimeout(3); s.connect((ip,port)); socks.append(s)
print(json.dumps({'locals':['%s:%d'%s.getsockname() for s in socks],'peers':['%s:%d'%s.getpeername() for s in socks]}),flush=True)
alive=[True]*n
for line in sys.stdin:
  a=line.split()
  if not a or a[0]=='q': break
  rounds,size,pause=int(a[0]),int(a[1]),float(a[2])
  for r in range(rounds):
    for i,s in enumerate(socks):
      if not alive[i]: continue
      try:
        d=os.urandom(size); s.sendall(d); got=b''
        while len(got)<size:
          x=s.recv(65536)
          if not x: raise OSError('closed')
          got+=x
        if got!=d: raise OSError('differs')
      except OSError:
        alive[i]=False
    time.sleep(pause)
  print(json.dumps({'ok':alive}),flush=True)
`;

/** TCP connections a client in a lab namespace holds open (holdTcpConnections). */
export interface HeldConnections {
  /** The client's address:port of each connection. */
  locals: string[];
  /** The address:port each one is connected to (the VIP when replies are translated). */
  peers: string[];
  /** `rounds` exchanges of `size` bytes on every live connection, `pause` s apart: which connections are still fine. */
  exchange(rounds: number, size: number, pause: number): Promise<boolean[]>;
  /** Ends the client (its connections close); safe to call twice. */
  close(): Promise<void>;
}

/**
 * Opens `n` TCP connections from namespace `ns` to ip:port and holds them
 * open; exchange() sends and checks echoed data on every live one. Rejects
 * when a connection cannot be made (the client's error). Needs root and
 * python3; `ns` must be a lab namespace.
 */
export async function holdTcpConnections(ns: string, ip: string, port: number, n: number): Promise<HeldConnections> {
  labNs(ns);
  parseIpv4(ip);
  int('port', port, 1, 65535);
  int('connections', n, 1, 1000);
  const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, PYTHON, '-c', HELD, ip, String(port), String(n)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  child.stdin!.on('error', () => { /* gone */ });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  let consumed = 0;
  const nextLine = () => new Promise<string>((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      const nl = out.indexOf('\n', consumed);
      if (nl >= 0) { const l = out.slice(consumed, nl); consumed = nl + 1; return resolve(l); }
      if (child.exitCode !== null) return reject(new Error(`held connections: ${err.trim().split('\n').pop() ?? 'exited'}`));
      if (Date.now() - t0 > 60_000) return reject(new Error('held connections: no answer in 60 s'));
      setTimeout(tick, 20);
    };
    tick();
  });
  let first: { locals: string[]; peers: string[] };
  try {
    first = JSON.parse(await nextLine()) as { locals: string[]; peers: string[] };
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    throw e;
  }
  return {
    ...first,
    async exchange(rounds, size, pause) {
      child.stdin!.write(`${rounds} ${size} ${pause}\n`);
      return (JSON.parse(await nextLine()) as { ok: boolean[] }).ok;
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin!.end('q\n');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}
