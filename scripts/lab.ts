/**
 * The lab: throwaway topologies of network namespaces joined by veth pairs,
 * for tests, the demo, and users with no spare interface. Every builder
 * tears down what it made if it fails half way; down() is idempotent.
 * Traffic helpers only ever send to addresses inside the lab.
 *
 *   tsx scripts/lab.ts up pair <tag>    veth <tag>h (root namespace) <-> <tag>p (namespace lbts-<tag>)
 *   tsx scripts/lab.ts up dnat <tag>    namespaces lbts-<tag>-{client,lb,backend}
 *   tsx scripts/lab.ts down <tag>
 *   tsx scripts/lab.ts list
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Runs a command; rejects with a one-line error naming it and its stderr. */
export async function run(cmd: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<{ stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(cmd[0], cmd.slice(1), { timeout: opts.timeoutMs ?? 30_000, encoding: 'utf8' });
    return { stdout, stderr };
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    const why = (err.stderr || err.message).trim().split('\n').pop();
    throw new Error(`${cmd.join(' ')}: ${why}`);
  }
}

/** Runs a command inside network namespace `ns` (ip netns exec). */
export function runNs(ns: string, cmd: string[], opts?: { timeoutMs?: number }): Promise<{ stdout: string; stderr: string }> {
  return run(['ip', 'netns', 'exec', ns, ...cmd], opts);
}

const PREFIX = 'lbts-';

function checkTag(tag: string): void {
  if (!/^[a-z0-9][a-z0-9-]{0,9}$/.test(tag)) throw new Error(`lab tag '${tag}': use 1-10 lowercase letters, digits or '-'`);
}

async function quiet(cmd: string[]): Promise<void> {
  try { await run(cmd); } catch { /* already gone */ }
}

/** Removes every namespace and root-namespace interface of `tag`. Never throws. */
export async function cleanup(tag: string): Promise<void> {
  const { stdout } = await run(['ip', '-o', 'link', 'show']).catch(() => ({ stdout: '' }));
  for (const m of stdout.matchAll(/^\d+: ([^:@]+)[@:]/gm)) {
    if (m[1] === `${tag}h` || m[1].startsWith(`${tag}-`)) await quiet(['ip', 'link', 'del', m[1]]);
  }
  const ns = await run(['ip', 'netns', 'list']).catch(() => ({ stdout: '' }));
  for (const line of ns.stdout.split('\n')) {
    const name = line.split(' ')[0];
    if (name === `${PREFIX}${tag}` || name.startsWith(`${PREFIX}${tag}-`)) await quiet(['ip', 'netns', 'del', name]);
  }
}

async function nsUp(ns: string): Promise<void> {
  await run(['ip', 'netns', 'add', ns]);
  await runNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
  await runNs(ns, ['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
}

async function macOf(ns: string | null, ifname: string): Promise<string> {
  const cmd = ['ip', '-j', 'link', 'show', 'dev', ifname];
  const { stdout } = ns ? await runNs(ns, cmd) : await run(cmd);
  return (JSON.parse(stdout) as Array<{ address: string }>)[0].address;
}

/** A veth pair: the host end in the root namespace, the peer end in namespace `ns`. */
export interface PairLab {
  tag: string;
  ns: string;
  hostIf: string;
  peerIf: string;
  hostIp: string;
  peerIp: string;
  hostMac: string;
  peerMac: string;
  hostIfindex: number;
  down(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function freeSubnet(tag: string): Promise<number> {
  const { stdout } = await run(['ip', '-4', '-o', 'addr', 'show']);
  const used = new Set([...stdout.matchAll(/inet 10\.201\.(\d+)\.(\d+)\//g)].map((m) => Number(m[1]) * 64 + (Number(m[2]) >> 2)));
  const start = createHash('sha1').update(tag).digest().readUInt16BE(0) % 16384;
  for (let i = 0; i < 16384; i++) {
    const slot = (start + i) % 16384;
    if (!used.has(slot)) return slot;
  }
  throw new Error('lab: no free /30 in 10.201.0.0/16');
}

/**
 * Builds a veth pair `<tag>h` (root namespace, addresses 10.201.x.y/30) and
 * `<tag>p` in namespace `lbts-<tag>`, IPv6 off on both ends so the kernel
 * sends nothing of its own but ARP. Throws (after cleaning up) on failure.
 */
export async function pairLab(tag: string): Promise<PairLab> {
  checkTag(tag);
  await cleanup(tag);
  const ns = `${PREFIX}${tag}`;
  const hostIf = `${tag}h`;
  const peerIf = `${tag}p`;
  try {
    await nsUp(ns);
    const slot = await freeSubnet(tag);
    const base = `10.201.${slot >> 6}.${(slot & 63) * 4}`;
    const [a, b, c, d] = base.split('.').map(Number);
    const hostIp = `${a}.${b}.${c}.${d + 1}`;
    const peerIp = `${a}.${b}.${c}.${d + 2}`;
    await run(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf, 'netns', ns]);
    await run(['sysctl', '-qw', `net.ipv6.conf.${hostIf}.disable_ipv6=1`]);
    await run(['ip', 'addr', 'add', `${hostIp}/30`, 'dev', hostIf]);
    await run(['ip', 'link', 'set', hostIf, 'up']);
    await runNs(ns, ['ip', 'addr', 'add', `${peerIp}/30`, 'dev', peerIf]);
    await runNs(ns, ['ip', 'link', 'set', peerIf, 'up']);
    const { stdout } = await run(['cat', `/sys/class/net/${hostIf}/ifindex`]);
    const lab: PairLab = {
      tag, ns, hostIf, peerIf, hostIp, peerIp,
      hostMac: await macOf(null, hostIf),
      peerMac: await macOf(ns, peerIf),
      hostIfindex: Number(stdout.trim()),
      down: () => cleanup(tag),
      [Symbol.asyncDispose]: () => cleanup(tag),
    };
    return lab;
  } catch (e) {
    await cleanup(tag);
    throw e;
  }
}

/** Three namespaces: client -- lb -- backend, with the service network routed through lb. */
export interface DnatLab {
  tag: string;
  client: string;
  lb: string;
  backend: string;
  clientIf: string;
  lbClientIf: string;
  lbBackendIf: string;
  backendIf: string;
  clientIp: string;
  lbClientIp: string;
  lbBackendIp: string;
  backendIp: string;
  vipNet: string;
  down(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Builds the load balancer's lab: client (10.0.1.2) -- (10.0.1.1) lb
 * (10.244.1.1) -- backend (10.244.1.5). The client routes 10.96.0.0/12 (the
 * service network) via lb; lb forwards. Everything lives in namespaces, so
 * labs with different tags never collide. Throws (after cleaning up) on failure.
 */
export async function dnatLab(tag: string): Promise<DnatLab> {
  checkTag(tag);
  await cleanup(tag);
  const lab: DnatLab = {
    tag,
    client: `${PREFIX}${tag}-client`, lb: `${PREFIX}${tag}-lb`, backend: `${PREFIX}${tag}-backend`,
    clientIf: 'eth0', lbClientIf: 'lb0', lbBackendIf: 'lb1', backendIf: 'eth0',
    clientIp: '10.0.1.2', lbClientIp: '10.0.1.1', lbBackendIp: '10.244.1.1', backendIp: '10.244.1.5',
    vipNet: '10.96.0.0/12',
    down: () => cleanup(tag),
    [Symbol.asyncDispose]: () => cleanup(tag),
  };
  try {
    for (const ns of [lab.client, lab.lb, lab.backend]) await nsUp(ns);
    await run(['ip', 'link', 'add', `${tag}-c`, 'type', 'veth', 'peer', 'name', `${tag}-l0`]);
    await run(['ip', 'link', 'set', `${tag}-c`, 'netns', lab.client, 'name', lab.clientIf]);
    await run(['ip', 'link', 'set', `${tag}-l0`, 'netns', lab.lb, 'name', lab.lbClientIf]);
    await run(['ip', 'link', 'add', `${tag}-b`, 'type', 'veth', 'peer', 'name', `${tag}-l1`]);
    await run(['ip', 'link', 'set', `${tag}-b`, 'netns', lab.backend, 'name', lab.backendIf]);
    await run(['ip', 'link', 'set', `${tag}-l1`, 'netns', lab.lb, 'name', lab.lbBackendIf]);
    const sets: Array<[string, string, string]> = [
      [lab.client, lab.clientIf, `${lab.clientIp}/24`],
      [lab.lb, lab.lbClientIf, `${lab.lbClientIp}/24`],
      [lab.lb, lab.lbBackendIf, `${lab.lbBackendIp}/24`],
      [lab.backend, lab.backendIf, `${lab.backendIp}/24`],
    ];
    for (const [ns, ifname, addr] of sets) {
      await runNs(ns, ['ip', 'addr', 'add', addr, 'dev', ifname]);
      await runNs(ns, ['ip', 'link', 'set', ifname, 'up']);
    }
    await runNs(lab.client, ['ip', 'route', 'add', 'default', 'via', lab.lbClientIp]);
    await runNs(lab.backend, ['ip', 'route', 'add', 'default', 'via', lab.lbBackendIp]);
    await runNs(lab.lb, ['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
    return lab;
  } catch (e) {
    await cleanup(tag);
    throw e;
  }
}

/** Sends `count` UDP datagrams of `payloadLen` bytes from namespace `ns`. */
export async function sendUdp(ns: string, dstIp: string, dstPort: number, count: number, payloadLen = 16, srcPort = 0): Promise<void> {
  const py = `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('',${srcPort}))\nfor i in range(${count}): s.sendto(b'x'*${payloadLen},('${dstIp}',${dstPort}))`;
  await runNs(ns, ['python3', '-c', py]);
}

/** Pings `ip` from namespace `ns` `count` times (fast interval); resolves even if replies are lost. */
export async function ping(ns: string, ip: string, count: number): Promise<number> {
  try {
    const { stdout } = await runNs(ns, ['ping', '-c', String(count), '-i', '0.01', '-W', '1', '-q', ip]);
    return Number(/(\d+) received/.exec(stdout)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * Opens `count` TCP connections from namespace `ns` to ip:port (each sends
 * `payloadLen` bytes when it connects); resolves with how many connected.
 */
export async function tcpConnect(ns: string, ip: string, port: number, count = 1, payloadLen = 0): Promise<number> {
  const py = `import socket\nn=0\nfor i in range(${count}):\n  s=socket.socket(); s.settimeout(1)\n  try:\n    s.connect(('${ip}',${port})); n+=1\n    if ${payloadLen}: s.sendall(b'x'*${payloadLen})\n  except Exception: pass\n  s.close()\nprint(n)`;
  const { stdout } = await runNs(ns, ['python3', '-c', py], { timeoutMs: 30_000 + count * 1000 });
  return Number(stdout.trim());
}

async function main(argv: string[]): Promise<void> {
  const [cmd, kind, tag] = argv;
  if (cmd === 'up' && kind === 'pair' && tag) {
    const l = await pairLab(tag);
    console.log(`host ${l.hostIf} ${l.hostIp} (root namespace)  <->  peer ${l.peerIf} ${l.peerIp} (namespace ${l.ns})`);
  } else if (cmd === 'up' && kind === 'dnat' && tag) {
    const l = await dnatLab(tag);
    console.log(`client ${l.client} ${l.clientIp}  <->  ${l.lbClientIf} ${l.lbClientIp} [${l.lb}] ${l.lbBackendIf} ${l.lbBackendIp}  <->  backend ${l.backend} ${l.backendIp}`);
  } else if (cmd === 'down' && kind) {
    checkTag(kind);
    await cleanup(kind);
    console.log(`removed lab ${kind}`);
  } else if (cmd === 'list') {
    const { stdout } = await run(['ip', 'netns', 'list']);
    console.log(stdout.split('\n').filter((l) => l.startsWith(PREFIX)).join('\n') || 'no labs');
  } else {
    console.error('usage: lab.ts up pair|dnat <tag> | down <tag> | list');
    process.exit(2);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e: Error) => {
    console.error(`error: ${e.message}`);
    process.exit(1);
  });
}
