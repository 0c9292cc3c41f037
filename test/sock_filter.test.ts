/**
 * sock_filter on a real kernel: a socket filter on a raw packet socket bound
 * to the host end of a lab veth pair, real packets sent from the peer
 * namespace.
 *
 * - Only what the `allow` map allows is received (by destination or source
 *   port, by protocol); everything else is counted by reason, and the
 *   kernel's own PACKET_STATISTICS agrees that nothing else was queued.
 * - Rules changed while the socket reads take effect at once.
 * - Test runs: the filter's return value is the bytes kept (0: refused) for
 *   truncated frames, fragments, ARP.
 * - A program of another type is refused in one line; detach and close are
 *   safe twice.
 * - The loader prints what it receives and stops by itself after --count.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { PacketSocket, attachSocketFilter, type Packet } from '../src/attach/socket.js';
import { FilterTable, PROGRAM, summarize, type SfStats } from '../src/lessons/sock_filter.js';
import { pairLab, ping, sendUdp, type PairLab } from '../src/lab/index.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, runLoader, startLoader, stopAllLoaders } from './helpers/loader.js';
import { buildFrame } from './helpers/packets.js';

/** Opens a filtered socket on the lab's host end, collecting what it receives. */
function capture(obj: BpfObject, lab: PairLab): { sock: PacketSocket; got: Packet[] } {
  const sock = PacketSocket.open(lab.hostIf, { filter: obj.program(PROGRAM) });
  const got: Packet[] = [];
  sock.onPacket((p) => got.push(p));
  return { sock, got };
}

const settle = () => new Promise((r) => setTimeout(r, 300));

describe.skipIf(!kernelTests())('sock_filter on a real kernel', () => {
  let lab: PairLab;
  beforeAll(async () => {
    lab = await pairLab('sfl');
    expect(await ping(lab.ns, lab.hostIp, 1)).toBe(1); // ARP resolved before anything is counted
  });
  afterAll(async () => {
    await stopAllLoaders();
    await lab?.down();
  });

  it('receives only the allowed port; the rest is counted, and the kernel queued nothing else', async () => {
    using obj = BpfObject.load(ensureObject('sock_filter'));
    const table = FilterTable.fromObject(obj);
    expect(table.allow('udp:5001')).toBe('udp:5001');
    const { sock, got } = capture(obj, lab);
    try {
      await sendUdp(lab.ns, lab.hostIp, 5002, 7, 100);
      await sendUdp(lab.ns, lab.hostIp, 5001, 5, 100);
      expect(await eventually(() => got.length >= 5, 3000)).toBe(true);
      await settle();
      const seen = got.map(summarize);
      expect(seen).toHaveLength(5);
      for (const s of seen) {
        expect(s).toMatchObject({ direction: 'host', ether: 'ipv4', proto: 'udp', src: lab.peerIp, dst: lab.hostIp, dport: 5001, length: 14 + 20 + 8 + 100 });
      }
      const stats: SfStats = table.stats();
      expect(stats.kept).toEqual({ packets: 5, bytes: 5 * 142 });
      // 7 datagrams to 5002 plus the host's ICMP port-unreachable answers (not allowed either).
      expect(stats.no_rule.packets).toBeGreaterThanOrEqual(7);
      expect(sock.stats()).toEqual({ packets: 5, drops: 0 });
    } finally {
      sock.close();
    }
  });

  it('a port matches as source too; rules changed while reading take effect at once', async () => {
    using obj = BpfObject.load(ensureObject('sock_filter'));
    const table = FilterTable.fromObject(obj);
    table.allow('udp:5001');
    const { sock, got } = capture(obj, lab);
    try {
      await sendUdp(lab.ns, lab.hostIp, 6000, 2, 10, 5001); // from port 5001
      expect(await eventually(() => got.length === 2, 3000)).toBe(true);
      expect(got.map(summarize).map((s) => [s.sport, s.dport])).toEqual([[5001, 6000], [5001, 6000]]);
      got.length = 0;
      expect(await ping(lab.ns, lab.hostIp, 3)).toBe(3);
      await settle();
      expect(got).toEqual([]);
      table.allow('icmp');
      expect(table.rules()).toEqual([{ proto: 1, port: 0 }, { proto: 17, port: 5001 }]);
      expect(await ping(lab.ns, lab.hostIp, 3)).toBe(3);
      expect(await eventually(() => got.length === 6, 3000)).toBe(true);
      // Both directions: the peer's echo requests in, the host's replies out.
      const seen = got.map(summarize);
      expect(seen.filter((s) => s.direction === 'host' && s.icmpType === 8)).toHaveLength(3);
      expect(seen.filter((s) => s.direction === 'outgoing' && s.icmpType === 0)).toHaveLength(3);
      table.remove('icmp');
      expect(() => table.remove('icmp')).toThrow('remove icmp: no rule icmp (ENOENT)');
      got.length = 0;
      expect(await ping(lab.ns, lab.hostIp, 2)).toBe(2);
      await settle();
      expect(got).toEqual([]);
    } finally {
      sock.close();
    }
  });

  it('test runs: the return value is the bytes kept; fragments, ARP and truncated frames are refused', () => {
    using obj = BpfObject.load(ensureObject('sock_filter'));
    const table = FilterTable.fromObject(obj);
    table.allow('tcp:80');
    const prog = obj.program(PROGRAM);
    // A test run of a socket filter pulls an Ethernet header off the input
    // (eth_type_trans) and starts the program after it, where a packet
    // socket's filter starts at the frame: give each frame behind a dummy one.
    const run = (frame: Uint8Array) => prog.testRun({ data: Buffer.concat([Buffer.alloc(14), frame]) }).retval;
    const tcp = buildFrame({ src: '192.0.2.1', dst: '192.0.2.2', proto: 6, sport: 40000, dport: 80, payload: new Uint8Array(20) });
    expect(run(tcp)).toBe(tcp.length);
    expect(run(buildFrame({ src: '192.0.2.1', dst: '192.0.2.2', proto: 6, sport: 40000, dport: 81 }))).toBe(0);
    expect(run(buildFrame({ src: '192.0.2.1', dst: '192.0.2.2', proto: 6, sport: 80, dport: 81 }))).toBe(54);
    expect(run(buildFrame({ src: '192.0.2.1', dst: '192.0.2.2', proto: 6, sport: 40000, dport: 80, fragOffset: 8 }))).toBe(0);
    const arp = Buffer.from(tcp);
    arp.writeUInt16BE(0x0806, 12);
    expect(run(arp)).toBe(0);
    expect(run(tcp.subarray(0, 20))).toBe(0);
    expect(run(tcp.subarray(0, 14 + 20 + 2))).toBe(0); // no room for the ports
    const s = table.stats();
    expect([s.kept.packets, s.no_rule.packets, s.not_ipv4.packets, s.malformed.packets]).toEqual([2, 2, 1, 2]);
    expect(s.kept.bytes).toBe(tcp.length + 54);
  });

  it('refuses a program of another type in one line; detach and close are safe twice', async () => {
    using fw = BpfObject.load(ensureObject('xdp_firewall'));
    using obj = BpfObject.load(ensureObject('sock_filter'));
    expect(() => PacketSocket.open(lab.hostIf, { filter: fw.program('xdp_firewall') }))
      .toThrow(/^attach xdp_firewall: xdp program cannot attach to a packet socket on sflh \(a socket filter is a socket_filter program: SEC\("socket"\)\) \(EINVAL\)$/);
    expect(() => PacketSocket.open('nosuchif0')).toThrow(/^find interface nosuchif0: no such interface/);
    const sock = PacketSocket.open(lab.hostIf);
    const got: Packet[] = [];
    sock.onPacket((p) => got.push(p));
    const filter = attachSocketFilter(obj.program(PROGRAM), sock.fd);
    expect(filter.description).toBe(`socket filter ${PROGRAM} on socket ${sock.fd}`);
    expect(() => attachSocketFilter(fw.program('xdp_firewall'), sock.fd)).toThrow(/xdp program cannot attach to socket/);
    await settle();
    got.length = 0;
    expect(await ping(lab.ns, lab.hostIp, 2)).toBe(2);
    await settle();
    expect(got).toEqual([]); // no rule: the filter refuses everything
    filter.detach();
    filter.detach();
    expect(await ping(lab.ns, lab.hostIp, 2)).toBe(2);
    expect(await eventually(() => got.length >= 4, 3000)).toBe(true); // unfiltered now
    sock.close();
    sock.close();
    expect(() => sock.receive()).toThrow('receive on packet socket sflh: the socket is closed (EBADF)');
  });

  it('loader: prints the allowed packets and stops by itself after --count', async () => {
    const loader = startLoader('sock_filter', [lab.hostIf, '--allow', 'udp:5001', '--json', '--count', '3']);
    try {
      await loader.waitFor('Ctrl-C to stop', 30_000);
      await sendUdp(lab.ns, lab.hostIp, 5002, 4, 10);
      await sendUdp(lab.ns, lab.hostIp, 5001, 3, 10);
      expect(await loader.exited).toEqual({ code: 0, signal: null });
    } finally {
      loader.kill('SIGKILL');
    }
    const lines = loader.stdout().trim().split('\n').map((l) => JSON.parse(l) as { dport: number; src: string });
    expect(lines.map((l) => [l.src, l.dport])).toEqual([[lab.peerIp, 5001], [lab.peerIp, 5001], [lab.peerIp, 5001]]);
    expect(loader.stderr()).toMatch(/^kept 3 \(156 bytes\); refused: no_rule \d+/m);
    const bad = await runLoader('sock_filter', [lab.hostIf, '--allow', 'tcp:99999']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("bad rule 'tcp:99999': port 99999 is not in 1..65535");
  });
});
