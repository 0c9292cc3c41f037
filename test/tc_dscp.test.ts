/**
 * tc_dscp: options, config encoding and rendering of the user side, then on
 * a real kernel with real datagrams through a lab veth ('dsc'):
 * - egress on the host end: UDP sent from the root namespace to 5060 and to
 *   the ends and middle of 10000-20000 arrives at a socket in the peer
 *   namespace (IP_RECVTOS) with DSCP 46 and its ECN bits (all four values)
 *   as sent; other ports arrive as sent; the receiving kernel counts no
 *   header or checksum error (it drops a packet whose IP checksum is wrong,
 *   so arriving at all says the checksum is right); exact counters;
 * - the seed's program on the same path: every marked datagram is dropped
 *   by the receiver as a checksum error, the ECN bits wiped;
 * - ingress on the host end with traffic from the peer, through the loader
 *   with its own port, range and DSCP;
 * - the loader: counts in --json, TCX or clsact, a clsact qdisc it created
 *   goes at exit and one that was there stays; SIGKILL leaves nothing
 *   attached (TCX).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, probeTcx, type Attachment } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { endianness } from 'node:os';
import {
  DEFAULT_RULE, DSCP_TC_SLOT, DscpConfig, PROGRAM, applyRule, countersMap, countsJson, describeRule, dscpConfig, dscpSnapshot,
  formatTos, markedTos, parseDscpOption, parsePortOption, parseRangeOption, readCounters, renderCounts, ruleFromOptions,
} from '../src/lessons/tc_dscp.js';
import { pairLab, run, runNs, type PairLab } from '../src/lab/index.js';
import { featureTests, kernelTests } from './helpers/kernel.js';
import { eventually, loadedPrograms, runLoader, startLoader, stopAllLoaders } from './helpers/loader.js';

const PY = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

describe('tc_dscp user side', () => {
  it('parses --port, --range and --dscp, and refuses bad ones', () => {
    expect(parsePortOption('5060')).toBe(5060);
    expect(parsePortOption('none')).toBe('none');
    expect(() => parsePortOption('0')).toThrow(/out of range/);
    expect(() => parsePortOption('65536')).toThrow(/out of range/);
    expect(() => parsePortOption('sip')).toThrow(/not a port number/);
    expect(parseRangeOption('10000-20000')).toEqual([10000, 20000]);
    expect(parseRangeOption('5004')).toEqual([5004, 5004]);
    expect(parseRangeOption('none')).toBe('none');
    expect(() => parseRangeOption('20-10')).toThrow(/empty/);
    expect(() => parseRangeOption('1-2-3')).toThrow(/not LO-HI/);
    expect(parseDscpOption('ef')).toBe(46);
    expect(parseDscpOption('AF41')).toBe(34);
    expect(parseDscpOption('cs5')).toBe(40);
    expect(parseDscpOption('63')).toBe(63);
    expect(() => parseDscpOption('64')).toThrow(/0-63/);
  });

  it('builds the rule: defaults are the seed\'s SIP port and RTP range with EF; nothing to mark is refused', () => {
    expect(ruleFromOptions({})).toEqual(DEFAULT_RULE);
    expect(ruleFromOptions({ port: 'none', range: [7000, 7001], dscp: 34 })).toEqual({ port: undefined, range: [7000, 7001], dscp: 34 });
    expect(() => ruleFromOptions({ port: 'none', range: 'none' })).toThrow(/nothing to mark/);
    expect(describeRule(DEFAULT_RULE)).toBe('UDP to port 5060 or 10000-20000 → DSCP 46 (EF)');
    expect(describeRule({ range: [5004, 5004], dscp: 34 })).toBe('UDP to port 5004 → DSCP 34 (AF41)');
  });

  it('encodes struct dscp_config byte for byte: ports in host order, 0 for none', () => {
    const b = Buffer.alloc(DscpConfig.size, 0xff);
    DscpConfig.encode(dscpConfig(DEFAULT_RULE), b);
    const h = Buffer.alloc(8);
    h.writeUInt16LE(5060, 0); h.writeUInt16LE(10000, 2); h.writeUInt16LE(20000, 4); h[6] = 46; h[7] = 0;
    if (endianness() === 'LE') expect(b).toEqual(h); // u16 fields are in host order
    expect(dscpConfig({ range: [1, 2], dscp: 0 })).toEqual({ port: 0, range_lo: 1, range_hi: 2, dscp: 0 });
    expect(() => dscpConfig({ port: 70000, dscp: 46 })).toThrow(RangeError);
    expect(() => dscpConfig({ port: 1, dscp: 64 })).toThrow(RangeError);
  });

  it('sets the DSCP and keeps the ECN bits; names TOS bytes', () => {
    expect([0, 1, 2, 3].map((t) => markedTos(t, 46))).toEqual([0xb8, 0xb9, 0xba, 0xbb]);
    expect(markedTos(0xff, 0)).toBe(0x03);
    expect(formatTos(0xb9)).toBe('0xb9 (DSCP 46 EF, ECN ECT(1))');
    expect(formatTos(0x00)).toBe('0x00 (DSCP 0 BE, ECN Not-ECT)');
    expect(formatTos(0x8b)).toBe('0x8b (DSCP 34 AF41, ECN CE)');
  });

  it('renders the counters as a line and as JSON', () => {
    const s = dscpSnapshot({ marked: 130, already: 1, unmatched: 7, skipped: 2 }, 10, 2, new Date('2025-01-02T03:04:05.000Z'));
    expect(renderCounts(s)).toBe('03:04:05  marked 130 (60.0/s)  already 1  unmatched 7  skipped 2');
    expect(JSON.parse(countsJson(s))).toEqual({ time: '2025-01-02T03:04:05.000Z', elapsed: 2, marked: 130, markedPerSec: 60, already: 1, unmatched: 7, skipped: 2 });
  });
});

// ---------------------------------------------------------------- real datagrams with their TOS

const RECEIVER = `
import socket,sys,select,os,json
ip=sys.argv[1]; ports=[int(p) for p in sys.argv[2].split(',')]
ss=[]
for p in ports:
  s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
  s.setsockopt(socket.IPPROTO_IP,socket.IP_RECVTOS,1)
  s.bind((ip,p)); ss.append((s,p))
print('ready',flush=True)
def take(s,p):
  d,anc,fl,a=s.recvmsg(2048,socket.CMSG_SPACE(4))
  tos=None
  for lvl,typ,data in anc:
    if lvl==socket.IPPROTO_IP and typ==socket.IP_TOS: tos=data[0]
  print(json.dumps({'port':p,'tos':tos,'payload':d.decode()}),flush=True)
socks=[s for s,_ in ss]
while True:
  r=select.select(socks+[0],[],[],30)[0]
  if not r: break
  for s,p in ss:
    if s in r: take(s,p)
  if 0 in r and not os.read(0,64): break
for s,p in ss:
  s.setblocking(False)
  try:
    while True: take(s,p)
  except BlockingIOError: pass
`;

interface Got { port: number; tos: number | null; payload: string }

/** A python receiver bound to ip on `ports` (in namespace `ns`, or the root one), reporting each datagram's TOS (IP_RECVTOS). */
async function tosReceiver(ns: string | null, ip: string, ports: number[]): Promise<{ stop(): Promise<Got[]> }> {
  const argv = [PY, '-c', RECEIVER, ip, ports.join(',')];
  const cmd = ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv;
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  if (!(await eventually(() => out.includes('ready') || child.exitCode !== null, 10_000)) || !out.includes('ready')) {
    child.kill('SIGKILL');
    throw new Error(`TOS receiver: ${err.trim() || 'did not start'}`);
  }
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 200)); // the last datagrams in flight
      child.stdin.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
      return out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Got);
    },
  };
}

const SENDER = `
import socket,sys
ip=sys.argv[1]
for item in sys.argv[2:]:
  port,tos,n=[int(x,0) for x in item.split(':')]
  s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
  s.setsockopt(socket.IPPROTO_IP,socket.IP_TOS,tos)
  for i in range(n): s.sendto(('%d:%d:%d'%(port,tos,i)).encode(),(ip,port))
  s.close()
`;

/** Sends, from namespace `ns` (or the root one), `n` datagrams to ip:port with IP_TOS `tos`, for each [port, tos, n]. Payload "port:tos:i". */
async function sendTos(ns: string | null, ip: string, sends: Array<[number, number, number]>): Promise<void> {
  const argv = [PY, '-c', SENDER, ip, ...sends.map(([p, t, n]) => `${p}:${t}:${n}`)];
  if (ns) await runNs(ns, argv);
  else await run(argv);
}

/** IPv4 header errors and checksum errors a namespace's stack counted (/proc/net/snmp Ip InHdrErrors, /proc/net/netstat IpExt InCsumErrors). */
async function ipErrors(ns: string | null): Promise<{ hdr: number; csum: number }> {
  const cat = async (f: string) => (ns ? await runNs(ns, ['cat', f]) : await run(['cat', f])).stdout.split('\n');
  const field = (lines: string[], prefix: string, name: string) => {
    const [head, vals] = lines.filter((l) => l.startsWith(`${prefix}: `)).map((l) => l.split(/\s+/));
    return Number(vals[head.indexOf(name)]);
  };
  return { hdr: field(await cat('/proc/net/snmp'), 'Ip', 'InHdrErrors'), csum: field(await cat('/proc/net/netstat'), 'IpExt', 'InCsumErrors') };
}

/** What arrived, as "port tos" strings sorted, for exact comparison. */
const seen = (g: Got[]) => g.map((x) => `${x.port} 0x${(x.tos ?? -1).toString(16)}`).sort();
const expectAll = (sends: Array<[number, number, number]>, tosOf: (port: number, tos: number) => number) =>
  sends.flatMap(([p, t, n]) => Array.from({ length: n }, () => `${p} 0x${tosOf(p, t).toString(16)}`)).sort();

const MARKED_PORTS = [5060, 10000, 15000, 20000];
const OTHER_PORTS = [5061, 9999, 20001];
const isMarked = (p: number) => MARKED_PORTS.includes(p);

const TCX = featureTests(probeTcx, [6, 6]);

describe.skipIf(!kernelTests())('tc_dscp on a real kernel', () => {
  let lab: PairLab;
  beforeAll(async () => { lab = await pairLab('dsc'); });
  afterAll(async () => {
    await stopAllLoaders();
    await lab?.down();
  });

  const qdiscs = async () => (await run(['tc', 'qdisc', 'show', 'dev', lab.hostIf])).stdout.trim();

  it('egress: SIP and RTP datagrams arrive with DSCP 46 and their ECN bits, accepted by the receiver; others untouched; exact counters', async () => {
    using obj = BpfObject.load(ensureObject('tc_dscp'));
    applyRule(obj, DEFAULT_RULE);
    const counters = countersMap(obj);
    const rx = await tosReceiver(lab.ns, lab.peerIp, [...MARKED_PORTS, ...OTHER_PORTS]);
    const errs0 = await ipErrors(lab.ns);
    let tc: Attachment | undefined;
    try {
      tc = obj.program(PROGRAM).attachTc(lab.hostIf, 'egress');
      // Every ECN value to 5060; ECT(0) to the range's ends and middle; the other ports with ECN bits too.
      const sends: Array<[number, number, number]> = [
        [5060, 0x00, 3], [5060, 0x01, 3], [5060, 0x02, 3], [5060, 0x03, 3],
        [10000, 0x02, 3], [15000, 0x01, 3], [20000, 0x02, 3],
        [5061, 0x01, 3], [9999, 0x02, 3], [20001, 0x03, 3],
      ];
      await sendTos(null, lab.peerIp, sends);
      // Already EF: counted, not rewritten.
      await sendTos(null, lab.peerIp, [[5060, 0xb9, 2]]);
      const got = await rx.stop();
      expect(seen(got)).toEqual(expectAll([...sends, [5060, 0xb9, 2]], (p, t) => (isMarked(p) ? markedTos(t, 46) : t)));
      expect(seen(got).filter((s) => s.startsWith('5060 '))).toEqual(['5060 0xb8', '5060 0xb8', '5060 0xb8', '5060 0xb9', '5060 0xb9', '5060 0xb9', '5060 0xb9', '5060 0xb9', '5060 0xba', '5060 0xba', '5060 0xba', '5060 0xbb', '5060 0xbb', '5060 0xbb']);
      expect(await ipErrors(lab.ns)).toEqual(errs0);
      const c = readCounters(counters);
      expect(c.marked).toBe(21);
      expect(c.already).toBe(2);
      expect(c.unmatched).toBe(9);
    } finally {
      tc?.detach();
    }
    expect(await qdiscs()).not.toMatch(/clsact/);
  });

  it('the seed\'s program on the same path: marked datagrams are dropped by the receiver as IP checksum errors', async () => {
    using obj = BpfObject.load(ensureObject('testdata', 'tc_dscp_seed'));
    const rx = await tosReceiver(lab.ns, lab.peerIp, [5060, 9999]);
    const errs0 = await ipErrors(lab.ns);
    const tc = obj.program('mark_voip').attachTc(lab.hostIf, 'egress');
    try {
      await sendTos(null, lab.peerIp, [[5060, 0x01, 5], [9999, 0x01, 2]]);
    } finally {
      tc.detach();
    }
    const got = await rx.stop();
    expect(seen(got)).toEqual(['9999 0x1', '9999 0x1']); // none of the five to 5060
    const errs = await ipErrors(lab.ns);
    expect({ hdr: errs.hdr - errs0.hdr, csum: errs.csum - errs0.csum }).toEqual({ hdr: 5, csum: 5 });
  });

  it('ingress through the loader: its own port, range and DSCP, from the peer namespace to a socket here; counts in --json; nothing left', async () => {
    const before = await qdiscs();
    const l = startLoader('tc_dscp', [lab.hostIf, '--direction', 'ingress', '--port', '7000', '--range', '7100-7199', '--dscp', 'af41', '--interval', '0.2', '--json']);
    const rx = await tosReceiver(null, lab.hostIp, [7000, 7100, 7199, 7200, 5060]);
    try {
      await l.waitFor('Ctrl-C to stop');
      expect(l.stderr()).toMatch(new RegExp(`attached tc ingress tc_dscp on ${lab.hostIf} \\((tcx link|clsact.*)\\)`));
      expect(l.stderr()).toContain('marking UDP to port 7000 or 7100-7199 → DSCP 34 (AF41), ECN bits kept');
      const errs0 = await ipErrors(null);
      const sends: Array<[number, number, number]> = [[7000, 0x01, 4], [7100, 0x02, 4], [7199, 0x03, 4], [7200, 0x01, 4], [5060, 0x02, 4]];
      await sendTos(lab.ns, lab.hostIp, sends);
      const got = await rx.stop();
      expect(seen(got)).toEqual(expectAll(sends, (p, t) => (p >= 7000 && p <= 7199 && p !== 7200 ? markedTos(t, 34) : t)));
      expect((await ipErrors(null)).csum).toBe(errs0.csum);
      // The JSON lines count the 12 marked datagrams.
      expect(await eventually(() => l.stdout().split('\n').some((x) => x.startsWith('{') && (JSON.parse(x) as { marked: number }).marked === 12), 5000)).toBe(true);
      const r = await l.stop('SIGINT');
      expect(r.code).toBe(0);
      expect(l.stderr()).toMatch(/marked 12, already marked 0, unmatched \d+, skipped \d+\ndetached\n$/);
    } finally {
      await rx.stop().catch(() => undefined);
      l.kill('SIGKILL');
    }
    expect(await qdiscs()).toBe(before);
  });

  it('--tc clsact: the qdisc it created goes at exit; a clsact that was there stays, only its filter goes', async () => {
    expect(await qdiscs()).not.toMatch(/clsact/);
    const created = startLoader('tc_dscp', [lab.hostIf, '--tc', 'clsact', '--interval', '1']);
    await created.waitFor('Ctrl-C to stop');
    expect(created.stderr()).toContain(`attached tc egress tc_dscp on ${lab.hostIf} (clsact, handle ${DSCP_TC_SLOT.handle}, priority ${DSCP_TC_SLOT.priority}, qdisc created)`);
    expect(await qdiscs()).toMatch(/qdisc clsact ffff:/);
    expect((await run(['tc', 'filter', 'show', 'dev', lab.hostIf, 'egress'])).stdout).toContain('tc_dscp');
    expect((await created.stop('SIGTERM')).code).toBe(0);
    expect(await qdiscs()).not.toMatch(/clsact/);

    await run(['tc', 'qdisc', 'add', 'dev', lab.hostIf, 'clsact']);
    try {
      const shared = startLoader('tc_dscp', [lab.hostIf, '--tc', 'clsact', '--interval', '1']);
      await shared.waitFor('Ctrl-C to stop');
      expect(shared.stderr()).not.toContain('qdisc created');
      const rx = await tosReceiver(lab.ns, lab.peerIp, [5060]);
      await sendTos(null, lab.peerIp, [[5060, 0x02, 2]]);
      expect(seen(await rx.stop())).toEqual(['5060 0xba', '5060 0xba']);
      expect((await shared.stop('SIGINT')).code).toBe(0);
      expect(await qdiscs()).toMatch(/qdisc clsact ffff:/);
      expect((await run(['tc', 'filter', 'show', 'dev', lab.hostIf, 'egress'])).stdout.trim()).toBe('');
    } finally {
      await run(['tc', 'qdisc', 'del', 'dev', lab.hostIf, 'clsact']).catch(() => undefined);
    }
  });

  it.runIf(TCX)('a loader killed with SIGKILL leaves nothing attached (its TCX link goes with it)', async () => {
    const before = await qdiscs();
    const l = startLoader('tc_dscp', [lab.hostIf, '--tc', 'tcx']);
    await l.waitFor('Ctrl-C to stop');
    expect(l.stderr()).toContain(`attached tc egress tc_dscp on ${lab.hostIf} (tcx link)`);
    const rx1 = await tosReceiver(lab.ns, lab.peerIp, [5060]);
    await sendTos(null, lab.peerIp, [[5060, 0x01, 1]]);
    expect(seen(await rx1.stop())).toEqual(['5060 0xb9']);
    l.kill('SIGKILL');
    expect((await l.exited).signal).toBe('SIGKILL');
    const rx2 = await tosReceiver(lab.ns, lab.peerIp, [5060]);
    await sendTos(null, lab.peerIp, [[5060, 0x01, 2]]);
    expect(seen(await rx2.stop())).toEqual(['5060 0x1', '5060 0x1']); // nothing marks any more
    // Nothing holds the program any more: the kernel unloads it (no link, no filter, no fd).
    expect(await eventually(() => !loadedPrograms().some((p) => p.name === PROGRAM), 5000)).toBe(true);
    expect(await qdiscs()).toBe(before);
  });

  it('answers --help on stdout with exit 0; bad usage exits 2 before touching the kernel', async () => {
    const help = await runLoader('tc_dscp', ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--direction <dir>');
    for (const args of [[lab.hostIf, '--direction', 'sideways'], [lab.hostIf, '--range', '20-10'], [lab.hostIf, '--tc', 'nope'], [lab.hostIf, '--dscp', '64']]) {
      const r = await runLoader('tc_dscp', args);
      expect(r.code, args.join(' ')).toBe(2);
    }
    const none = await runLoader('tc_dscp', [lab.hostIf, '--port', 'none', '--range', 'none']);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('error: --port none and --range none: nothing to mark\n');
    expect(await qdiscs()).not.toMatch(/clsact/);
  });
});
