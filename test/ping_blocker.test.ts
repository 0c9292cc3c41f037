/**
 * ping_blocker: the user side's pure parts (event decoding, rendering,
 * address parsing, the commands' usage), then on a real kernel: crafted
 * frames through BPF_PROG_TEST_RUN (the ICMP header found after IP options,
 * blocked sources and destinations dropped and reported, fragments and
 * truncated packets, other protocols untouched, a full ring counted), and
 * the loader as a user runs it on a lab veth: pings from the peer namespace
 * seen one by one, blocked and unblocked while it runs through
 * scripts/ping_block.ts, and nothing left attached after SIGKILL.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, XdpAction, parseIpv4, queryXdp } from '../src/index.js';
import { ensureObject, REPO_ROOT } from '../src/cli/build.js';
import {
  Blocklist, PING_DROPPED, PING_NO_HEADER, PING_SRC_BLOCKED, PingCounters, PingEventStruct, decodePingEvent,
  defaultPinDir, formatClock, formatPing, formatPingSummary, icmpTypeName, monotonicToWallMs, openPingWatch, parseBlockAddress,
  pingJson, type PingEvent, type PingWatch, type RawPingEvent,
} from '../src/lessons/ping_blocker.js';
import { CommandError, pairLab, runNs, sendUdp, type PairLab } from '../src/lab/index.js';
import { kernelTests, removePins } from './helpers/kernel.js';
import { eventually, runLoader, startLoader, stopAllLoaders } from './helpers/loader.js';
import { buildFrame, inetChecksum } from './helpers/packets.js';

/**
 * Sends exactly `count` echo requests from `ns` (200 ms apart, each waiting
 * up to 1 s for its reply) and resolves with the number of replies. Unlike
 * the lab's ping() (which, under a deadline, keeps sending until it has
 * `count` replies), the number of requests is fixed, so the number of
 * events is too.
 */
async function ping(ns: string, ip: string, count: number): Promise<number> {
  let out: string;
  try {
    out = (await runNs(ns, ['ping', '-n', '-q', '-c', String(count), '-i', '0.2', '-W', '1', ip], { timeoutMs: 30_000 })).stdout;
  } catch (e) {
    if (!(e instanceof CommandError) || !/ received/.test(e.stdout)) throw e;
    out = e.stdout;
  }
  expect(out).toMatch(new RegExp(`\\b${count} packets transmitted`));
  return Number(/(\d+) received/.exec(out)?.[1] ?? -1);
}

/** Runs scripts/ping_block.ts to completion. */
function pingBlock(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'ping_block.ts'), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => { stdout += String(d); });
    c.stderr.on('data', (d) => { stderr += String(d); });
    c.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const raw = (o: Partial<RawPingEvent>): RawPingEvent => ({ ...PingEventStruct.zero(), ...o });
const T0 = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
const fixedClock = () => T0;

describe('ping_blocker user side', () => {
  it('decodes struct ping_event: addresses, id and seq from network order', () => {
    expect(PingEventStruct.size).toBe(24);
    expect(PingCounters.size).toBe(32);
    const b = Buffer.alloc(24);
    b.writeBigUInt64LE(123456789n, 0);
    b.set([10, 201, 0, 2, 10, 201, 0, 1], 8);
    b.set([0x12, 0x34, 0x00, 0x07, 8, 0, PING_DROPPED | PING_SRC_BLOCKED, 0], 16);
    const r = PingEventStruct.decode(b);
    expect(r).toEqual({ ts_ns: 123456789, saddr: parseIpv4('10.201.0.2'), daddr: parseIpv4('10.201.0.1'), id: 0x1234, seq: 7, type: 8, code: 0, flags: 3 });
    expect(decodePingEvent(r, fixedClock)).toEqual({
      time: new Date(T0), src: '10.201.0.2', dst: '10.201.0.1', type: 8, code: 0, id: 0x1234, seq: 7, dropped: true, srcBlocked: true, dstBlocked: false,
    });
  });

  it('leaves id and seq out for other than echo, and type and code out without an ICMP header', () => {
    const unreach = decodePingEvent(raw({ saddr: parseIpv4('10.0.0.1'), daddr: parseIpv4('10.0.0.2'), type: 3, code: 3, id: 9, seq: 9 }), fixedClock);
    expect(unreach).toMatchObject({ type: 3, code: 3 });
    expect(unreach.id).toBeUndefined();
    const frag = decodePingEvent(raw({ flags: PING_NO_HEADER }), fixedClock);
    expect(frag.type).toBeUndefined();
    expect(frag.code).toBeUndefined();
    expect(frag.id).toBeUndefined();
  });

  it('turns the kernel monotonic stamp into wall-clock time', () => {
    expect(monotonicToWallMs(5e9, { wallMs: 1_000_000, monoNs: 7e9 })).toBe(998_000);
    // Now, read by the same clocks the kernel uses: within a few ms of Date.now().
    const ms = monotonicToWallMs(Number(process.hrtime.bigint()));
    expect(Math.abs(ms - Date.now())).toBeLessThan(50);
  });

  it('renders one text line per packet, DROPPED and why when dropped', () => {
    const base: PingEvent = { time: new Date(2024, 0, 2, 3, 4, 5, 6), src: '10.201.0.2', dst: '10.201.0.1', type: 8, code: 0, id: 4660, seq: 1, dropped: false, srcBlocked: false, dstBlocked: false };
    expect(formatClock(base.time)).toBe('03:04:05.006');
    expect(formatPing(base)).toBe('03:04:05.006  10.201.0.2 → 10.201.0.1           echo-request id 4660 seq 1');
    expect(formatPing({ ...base, dropped: true, srcBlocked: true })).toBe('03:04:05.006  10.201.0.2 → 10.201.0.1           echo-request id 4660 seq 1  DROPPED (source blocked)');
    expect(formatPing({ ...base, dropped: true, dstBlocked: true })).toMatch(/DROPPED \(destination blocked\)$/);
    expect(formatPing({ ...base, dropped: true, srcBlocked: true, dstBlocked: true })).toMatch(/DROPPED \(both blocked\)$/);
    expect(formatPing({ ...base, type: 0 })).toMatch(/ echo-reply id 4660 seq 1$/);
    expect(formatPing({ ...base, type: 3, code: 3, id: undefined, seq: undefined })).toMatch(/ dest-unreachable code 3$/);
    expect(formatPing({ ...base, type: undefined, code: undefined, id: undefined, seq: undefined })).toMatch(/ fragment \(no ICMP header\)$/);
    expect(icmpTypeName(42)).toBe('type 42');
  });

  it('renders NDJSON', () => {
    const e: PingEvent = { time: new Date(T0), src: '10.201.0.2', dst: '10.201.0.1', type: 8, code: 0, id: 4660, seq: 1, dropped: false, srcBlocked: false, dstBlocked: false };
    expect(pingJson(e)).toBe('{"time":"2024-01-02T03:04:05.678Z","src":"10.201.0.2","dst":"10.201.0.1","type":8,"type_name":"echo-request","code":0,"id":4660,"seq":1,"dropped":false}');
    expect(JSON.parse(pingJson({ ...e, dropped: true, dstBlocked: true }))).toMatchObject({ dropped: true, blocked: 'dst' });
    expect(pingJson({ ...e, type: undefined, code: undefined, id: undefined, seq: undefined })).toBe('{"time":"2024-01-02T03:04:05.678Z","src":"10.201.0.2","dst":"10.201.0.1","dropped":false}');
    expect(formatPingSummary({ icmp: 7, dropped: 3, events: 7, lost: 0 })).toBe('7 ICMP packets, 3 dropped, 0 events lost');
    expect(formatPingSummary({ icmp: 1, dropped: 0, events: 0, lost: 1 })).toBe('1 ICMP packet, 0 dropped, 1 event lost');
  });

  it('parses addresses to block, and refuses bad ones', () => {
    expect(parseBlockAddress('10.1.2.3')).toBe('10.1.2.3');
    for (const bad of ['10.1.2.256', '10.1.2', 'host', '']) expect(() => parseBlockAddress(bad), bad).toThrow(/is not an IPv4 address/);
  });

  it('the loader and the script answer --help (exit 0) and refuse bad usage (exit 2)', async () => {
    const help = await runLoader('ping_blocker', ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--block <ip>/);
    const bad = await runLoader('ping_blocker', ['lo', '--block', '10.0.0.300']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/'10\.0\.0\.300' is not an IPv4 address/);
    const sh = await pingBlock(['--help']);
    expect(sh.code).toBe(0);
    expect(sh.stdout).toMatch(/block \[options\] <ip\.\.\.>|block <ip\.\.\.>/);
    expect((await pingBlock([])).code).toBe(2);
    expect((await pingBlock(['frobnicate'])).code).toBe(2);
  });
});

/** An ICMP message: type, code, checksum, id, seq, then `data`. */
function icmp(type: number, id: number, seq: number, data = Buffer.alloc(8, 0xab), code = 0): Buffer {
  const m = Buffer.concat([Buffer.from([type, code, 0, 0, id >> 8, id & 255, seq >> 8, seq & 255]), data]);
  m.writeUInt16BE(inetChecksum(m, 0, m.length), 2);
  return m;
}

describe.skipIf(!kernelTests())('ping_blocker on crafted frames (BPF_PROG_TEST_RUN)', () => {
  let obj: BpfObject;
  let watch: PingWatch;
  let list: Blocklist;

  beforeAll(() => {
    obj = BpfObject.load(ensureObject('ping_blocker'));
    watch = openPingWatch(obj);
    list = Blocklist.fromObject(obj);
  });
  afterAll(() => {
    watch?.reader.close();
    obj?.close();
  });

  /** Runs the program on `frame` and returns its action and the events it wrote. */
  function run(frame: Buffer, repeat = 1): { action: number; events: PingEvent[] } {
    const r = obj.program('ping_blocker').testRun({ data: frame, repeat });
    const events: PingEvent[] = [];
    watch.reader.read((e) => events.push(e));
    return { action: r.retval, events };
  }

  const A = '10.77.0.1';
  const B = '10.77.0.2';

  it('reports an echo request with its type, id and sequence, and passes it', () => {
    const before = watch.counters();
    const t0 = Date.now();
    const { action, events } = run(buildFrame({ src: A, dst: B, proto: 1, payload: icmp(8, 0x1234, 7) }));
    expect(action).toBe(XdpAction.PASS);
    expect(events).toHaveLength(1);
    const { time, ...rest } = events[0];
    expect(rest).toEqual({ src: A, dst: B, type: 8, code: 0, id: 0x1234, seq: 7, dropped: false, srcBlocked: false, dstBlocked: false });
    expect(Math.abs(time.getTime() - t0)).toBeLessThan(1000);
    const after = watch.counters();
    expect(after.icmp - before.icmp).toBe(1);
    expect(after.events - before.events).toBe(1);
    expect(after.dropped - before.dropped).toBe(0);
  });

  it('finds the ICMP header after IP options (ihl > 5), where ip + 1 would read the options', () => {
    // Record Route (type 7, length 11, pointer 4) padded to 12 bytes: ihl 8.
    const options = Uint8Array.from([7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const frame = buildFrame({ src: A, dst: B, proto: 1, options, payload: icmp(0, 0xbeef, 42) });
    expect(frame[14] & 15).toBe(8);
    expect(frame[14 + 20]).toBe(7); // what the seed's `ip + 1` takes for the ICMP type
    const { action, events } = run(frame);
    expect(action).toBe(XdpAction.PASS);
    expect(events.map(({ time, ...e }) => e)).toEqual([{ src: A, dst: B, type: 0, code: 0, id: 0xbeef, seq: 42, dropped: false, srcBlocked: false, dstBlocked: false }]);
  });

  it('drops ICMP from or to a blocked address, says which, and counts the drops per address', () => {
    list.block(A);
    try {
      const from = run(buildFrame({ src: A, dst: B, proto: 1, payload: icmp(8, 1, 1) }));
      expect(from.action).toBe(XdpAction.DROP);
      expect(from.events.map((e) => [e.dropped, e.srcBlocked, e.dstBlocked])).toEqual([[true, true, false]]);
      const to = run(buildFrame({ src: B, dst: A, proto: 1, payload: icmp(0, 1, 1) }));
      expect(to.action).toBe(XdpAction.DROP);
      expect(to.events.map((e) => [e.dropped, e.srcBlocked, e.dstBlocked, e.type])).toEqual([[true, false, true, 0]]);
      list.block(B);
      const both = run(buildFrame({ src: A, dst: B, proto: 1, payload: icmp(8, 1, 2) }));
      expect(both.events.map((e) => [e.dropped, e.srcBlocked, e.dstBlocked])).toEqual([[true, true, true]]);
      // A packet counts once, against its source when both are blocked.
      expect(list.list()).toEqual([{ ip: A, drops: 3 }, { ip: B, drops: 0 }]);
      // Only ICMP is blocked: UDP from the same address passes, unreported.
      const udp = run(buildFrame({ src: A, dst: B, proto: 17, sport: 1000, dport: 53 }));
      expect(udp).toEqual({ action: XdpAction.PASS, events: [] });
      expect(list.block(A)).toBe(false); // already blocked: kept, with its count
      expect(list.list()[0]).toEqual({ ip: A, drops: 3 });
    } finally {
      list.unblock(A);
      list.unblock(B);
    }
    expect(list.list()).toEqual([]);
    expect(run(buildFrame({ src: A, dst: B, proto: 1, payload: icmp(8, 1, 3) })).action).toBe(XdpAction.PASS);
  });

  it('reports non-first fragments and truncated ICMP without a header, and drops them when blocked', () => {
    const frag = run(buildFrame({ src: A, dst: B, proto: 1, fragOffset: 185, df: false, payload: Buffer.alloc(16, 1) }));
    expect(frag.events.map(({ time, ...e }) => e)).toEqual([{ src: A, dst: B, dropped: false, srcBlocked: false, dstBlocked: false }]);
    const cut = buildFrame({ src: A, dst: B, proto: 1, payload: icmp(8, 1, 1) }).subarray(0, 14 + 20 + 4);
    expect(run(Buffer.from(cut)).events.map((e) => e.type)).toEqual([undefined]);
    list.block(B);
    try {
      const f2 = run(buildFrame({ src: A, dst: B, proto: 1, fragOffset: 185, df: false, payload: Buffer.alloc(16, 1) }));
      expect(f2.action).toBe(XdpAction.DROP);
      expect(f2.events[0]).toMatchObject({ dropped: true, dstBlocked: true });
      expect(f2.events[0].type).toBeUndefined();
    } finally {
      list.unblock(B);
    }
  });

  it('passes non-ICMP, non-IPv4 and malformed headers without an event', () => {
    const bad = buildFrame({ src: A, dst: B, proto: 1, payload: icmp(8, 1, 1) });
    bad[14] = 0x44; // ihl 4: not an IP header
    const arp = buildFrame({ src: A, dst: B, proto: 1, etherType: 0x0806, payload: icmp(8, 1, 1) });
    const before = watch.counters();
    for (const f of [bad, arp, buildFrame({ src: A, dst: B, proto: 6 })]) expect(run(f)).toEqual({ action: XdpAction.PASS, events: [] });
    expect(watch.counters().icmp).toBe(before.icmp);
  });

  it('counts every event the full ring could not take: none is lost silently', () => {
    const before = watch.counters();
    const n = 10_000;
    // 24-byte events take 32 bytes of the 256 KiB ring with their header: fewer than 8192 fit unread.
    run(buildFrame({ src: A, dst: B, proto: 1, payload: icmp(8, 1, 1) }), n);
    const after = watch.counters();
    const events = after.events - before.events;
    const lost = after.lost - before.lost;
    expect(after.icmp - before.icmp).toBe(n);
    expect(events + lost).toBe(n);
    expect(lost).toBeGreaterThan(0);
    expect(events).toBeGreaterThan(8000);
    expect(watch.reader.stats().lost).toBe(after.lost);
  });
});

describe.skipIf(!kernelTests())('ping_blocker loader on a lab veth', () => {
  let lab: PairLab;

  beforeAll(async () => {
    lab = await pairLab('pgb');
  });
  afterAll(async () => {
    await stopAllLoaders();
    removePins(defaultPinDir(lab?.hostIf ?? 'pgbh'));
    await lab?.down();
  });

  /** The JSON lines of stdout from line `from` on, once there are `n` of them (5 s at most), then 300 ms more. */
  async function lines(p: { stdout(): string }, from: number, n: number): Promise<Array<Record<string, unknown>>> {
    const get = () => p.stdout().split('\n').filter(Boolean).slice(from).map((l) => JSON.parse(l) as Record<string, unknown>);
    await eventually(() => get().length >= n, 5000);
    await new Promise((r) => setTimeout(r, 300));
    return get();
  }

  it('sees every ping; blocked through the script they get no replies and are reported DROPPED; unblocked they come back', async () => {
    const p = startLoader('ping_blocker', [lab.hostIf, '--json']);
    try {
      await p.waitFor('Ctrl-C to stop');
      const dir = defaultPinDir(lab.hostIf);
      expect(p.stderr()).toContain(`pinned the blocklist at ${dir}`);
      expect(queryXdp(lab.hostIf).map((x) => x.name)).toEqual(['ping_blocker']);

      expect(await ping(lab.ns, lab.hostIp, 3)).toBe(3);
      const seen = await lines(p, 0, 3);
      expect(seen.map((e) => [e.src, e.dst, e.type_name, e.dropped])).toEqual(Array(3).fill([lab.peerIp, lab.hostIp, 'echo-request', false]));
      expect(seen.map((e) => e.seq)).toEqual([1, 2, 3]);

      const blocked = await pingBlock(['--iface', lab.hostIf, 'block', lab.peerIp]);
      expect(blocked).toEqual({ code: 0, stdout: `blocked ${lab.peerIp}\n`, stderr: '' });
      expect(await ping(lab.ns, lab.hostIp, 3)).toBe(0);
      const dropped = await lines(p, 3, 3);
      expect(dropped.map((e) => [e.src, e.type_name, e.dropped, e.blocked])).toEqual(Array(3).fill([lab.peerIp, 'echo-request', true, 'src']));
      const listed = await pingBlock(['--iface', lab.hostIf, 'list', '--json']);
      expect(JSON.parse(listed.stdout)).toEqual({ pinDir: dir, blocked: [{ ip: lab.peerIp, drops: 3 }] });
      expect((await pingBlock(['--pin-dir', dir, 'list'])).stdout).toBe(`${lab.peerIp.padEnd(16)}          3 dropped\n`);

      expect(await pingBlock(['--iface', lab.hostIf, 'unblock', lab.peerIp])).toEqual({ code: 0, stdout: `unblocked ${lab.peerIp}\n`, stderr: '' });
      expect((await pingBlock(['--iface', lab.hostIf, 'unblock', lab.peerIp])).stdout).toBe(`${lab.peerIp} was not blocked\n`);
      expect(await ping(lab.ns, lab.hostIp, 3)).toBe(3);
      const back = await lines(p, 6, 3);
      expect(back.map((e) => [e.src, e.dropped])).toEqual(Array(3).fill([lab.peerIp, false]));
      expect(back).toHaveLength(3);

      expect(await p.stop('SIGINT')).toEqual({ code: 0, signal: null });
      expect(p.stderr()).toMatch(/\n9 ICMP packets, 3 dropped, 0 events lost\ndetached\n$/);
      expect(queryXdp(lab.hostIf)).toEqual([]);
      expect(existsSync(dir)).toBe(false);
      const gone = await pingBlock(['--iface', lab.hostIf, 'list']);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toMatch(/^error: find ping_blocker loader: no ping_blocker loader on pgbh/);
    } finally {
      await stopAllLoaders();
    }
  });

  it('--block at start drops pings to the blocked destination; SIGKILL leaves nothing attached, and the next loader takes the pin over', async () => {
    const p = startLoader('ping_blocker', [lab.hostIf, '--block', lab.hostIp]);
    try {
      await p.waitFor('Ctrl-C to stop');
      expect(p.stderr()).toContain(`blocked: ${lab.hostIp}`);
      expect(await ping(lab.ns, lab.hostIp, 2)).toBe(0);
      await p.waitForStdout(/seq 2 {2}DROPPED \(destination blocked\)\n/);
      expect(p.stdout()).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  ${lab.peerIp.replace(/\./g, '\\.')} → ${lab.hostIp.replace(/\./g, '\\.')} +echo-request id \\d+ seq 1  DROPPED \\(destination blocked\\)\n`));
      p.kill('SIGKILL');
      expect(await p.exited).toEqual({ code: null, signal: 'SIGKILL' });
      expect(queryXdp(lab.hostIf)).toEqual([]);
      expect(await ping(lab.ns, lab.hostIp, 2)).toBe(2);
      // The pin outlives a SIGKILL; the script says its loader is gone, and a new loader replaces it.
      const dir = defaultPinDir(lab.hostIf);
      const stale = await pingBlock(['--iface', lab.hostIf, 'list']);
      expect(stale.code).toBe(1);
      expect(stale.stderr).toBe(`error: open blocklist at ${dir}: the ping_blocker loader that pinned ${dir} is gone (no program uses its maps); start it again (ESRCH)\n`);
      const q = startLoader('ping_blocker', [lab.hostIf, '--json']);
      await q.waitFor('Ctrl-C to stop');
      expect((await pingBlock(['--iface', lab.hostIf, 'list'])).stdout).toBe('no blocked addresses\n');
      await sendUdp(lab.ns, lab.hostIp, 9000, 2, 10, 40001); // not ICMP: not reported
      expect(await ping(lab.ns, lab.hostIp, 1)).toBe(1);
      expect((await lines(q, 0, 1)).map((e) => e.dropped)).toEqual([false]);
      expect(await q.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      expect(existsSync(dir)).toBe(false);
    } finally {
      await stopAllLoaders();
    }
  });
});
