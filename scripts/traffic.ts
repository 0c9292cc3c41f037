/**
 * Commands, and real traffic from inside the lab's network namespaces.
 *
 * `run`/`runNs` run a command (optionally inside a namespace) and turn a
 * failure into one line. The traffic helpers run small inline python3
 * scripts with `ip netns exec`, with bounded counts and timeouts, and only
 * from lab namespaces (`lbts-*`): those have routes only to the lab's own
 * addresses, so no packet ever leaves the lab. scripts/lab.ts re-exports all
 * of this; import from there.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface RunOptions {
  /** Kill the command (SIGKILL) and reject after this long; default 30 s. */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  input?: string;
}

/** A command that failed: the message is one line; the output stays available. */
export class CommandError extends Error {
  override name = 'CommandError';
  readonly cmd: string[];
  /** Exit code, or null when killed by a signal or never started. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  constructor(message: string, cmd: string[], code: number | null, stdout: string, stderr: string) {
    super(message);
    this.cmd = cmd;
    this.code = code;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

/** The command as one short line (inline scripts shown by their size). */
function showCmd(cmd: string[]): string {
  const s = cmd.map((a) => (a.includes('\n') ? `<${a.length}-char script>` : a)).join(' ');
  return s.length > 200 ? `${s.slice(0, 197)}...` : s;
}

/**
 * Runs `cmd` (argv, no shell) and resolves with its output when it exits 0.
 * Rejects with a CommandError whose one-line message names the command and
 * the last line of its stderr (or the exit code, signal, timeout, or "not
 * found" when it could not start).
 */
export function run(cmd: string[], opts: RunOptions = {}): Promise<{ stdout: string; stderr: string }> {
  if (cmd.length === 0) return Promise.reject(new Error('run: empty command'));
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd.slice(1), { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => { /* the command exited without reading it */ });
      child.stdin!.end(opts.input);
    }
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    const fail = (why: string, code: number | null) =>
      reject(new CommandError(`${showCmd(cmd)}: ${why}`, cmd, code, stdout, stderr));
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      fail(e.code === 'ENOENT' ? `${cmd[0]}: command not found` : e.message, null);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && !timedOut) return resolve({ stdout, stderr });
      const last = stderr.split('\n').map((l) => l.trim()).filter(Boolean).pop();
      if (timedOut) fail(`timed out after ${timeoutMs / 1000} s${last ? ` (${last})` : ''}`, code);
      else fail(last ?? (signal ? `killed by ${signal}` : `exit code ${code}`), code);
    });
  });
}

/** Runs `cmd` inside network namespace `ns` (`ip netns exec ns ...`); rejects like run(). */
export function runNs(ns: string, cmd: string[], opts?: RunOptions): Promise<{ stdout: string; stderr: string }> {
  if (!ns) return Promise.reject(new Error('runNs: empty namespace name'));
  return run(['ip', 'netns', 'exec', ns, ...cmd], opts);
}

/** The system python when there is one: a pyenv shim costs ~100 ms per start. */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

function labNs(ns: string): void {
  if (!/^lbts-[a-z0-9-]+$/.test(ns)) throw new Error(`traffic is only sent from lab namespaces (lbts-*), not '${ns}'`);
}
function ipv4(ip: string): void {
  const parts = ip.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) throw new Error(`not an IPv4 address: '${ip}'`);
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
  ipv4(dstIp);
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
  ipv4(dstIp);
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
 * Pings `ip` `count` times from namespace `ns` (10 ms apart, deadline
 * count/100 + 2 s) and resolves with the number of replies; lost replies and
 * an unreachable network give a smaller number or 0, not an error. Throws on
 * a non-lab namespace, a bad address, count outside 1..1000, or when ping
 * cannot run (e.g. the namespace does not exist).
 */
export async function ping(ns: string, ip: string, count = 3): Promise<number> {
  labNs(ns);
  ipv4(ip);
  int('count', count, 1, 1000);
  const deadline = String(Math.ceil(count / 100) + 2);
  let out: string;
  try {
    out = (await runNs(ns, ['ping', '-n', '-q', '-c', String(count), '-i', '0.01', '-W', '1', '-w', deadline, ip], { timeoutMs: 30_000 })).stdout;
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
  ipv4(ip);
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
