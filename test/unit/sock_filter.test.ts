import { describe, expect, it } from 'vitest';
import { formatPacket, formatRule, formatStats, parseRule, ruleStruct, summarize } from '../../src/lessons/sock_filter.js';
import { buildFrame } from '../helpers/packets.js';

describe('sock_filter rules', () => {
  it('parses and formats protocol[:port]', () => {
    expect(parseRule('tcp:80')).toEqual({ proto: 6, port: 80 });
    expect(parseRule('UDP:53')).toEqual({ proto: 17, port: 53 });
    expect(parseRule('icmp')).toEqual({ proto: 1, port: 0 });
    expect(parseRule('47')).toEqual({ proto: 47, port: 0 });
    expect(parseRule('6:443')).toEqual({ proto: 6, port: 443 });
    for (const t of ['tcp:80', 'udp', 'icmp', 'gre', '200']) expect(formatRule(parseRule(t))).toBe(t);
  });
  it('refuses bad rules in one line', () => {
    expect(() => parseRule('tcp:0')).toThrow("bad rule 'tcp:0': port 0 is not in 1..65535");
    expect(() => parseRule('icmp:3')).toThrow("bad rule 'icmp:3': only tcp and udp have ports");
    expect(() => parseRule('foo')).toThrow("bad rule 'foo': unknown protocol 'foo'");
    expect(() => parseRule('300')).toThrow("bad rule '300': protocol 300 is over 255");
    expect(() => parseRule('tcp 80')).toThrow("bad rule 'tcp 80': use PROTO or PROTO:PORT");
  });
  it('encodes struct sf_rule as the kernel reads it: proto, zero pad, port in host order', () => {
    const b = Buffer.alloc(4);
    ruleStruct.encode({ proto: 6, port: 0x1234 }, b);
    expect([...b]).toEqual([6, 0, 0x34, 0x12]);
  });
});

describe('sock_filter packets', () => {
  it('summarizes and formats what the socket received', () => {
    const udp = buildFrame({ src: '10.0.0.2', dst: '10.0.0.1', proto: 17, sport: 4000, dport: 53, payload: new Uint8Array(4) });
    const s = summarize({ data: Buffer.from(udp), length: udp.length, ifindex: 3, direction: 'host', protocol: 0x800 });
    expect(s).toEqual({ direction: 'host', length: 46, ether: 'ipv4', src: '10.0.0.2', dst: '10.0.0.1', proto: 'udp', sport: 4000, dport: 53 });
    expect(formatPacket(s)).toBe('in   udp 10.0.0.2:4000 > 10.0.0.1:53  46 bytes');
    const icmp = buildFrame({ src: '10.0.0.1', dst: '10.0.0.2', proto: 1, payload: new Uint8Array([0, 0, 0, 0]) });
    expect(formatPacket(summarize({ data: Buffer.from(icmp), length: icmp.length, ifindex: 3, direction: 'outgoing', protocol: 0x800 })))
      .toBe('out  icmp 10.0.0.1 > 10.0.0.2 type 0  38 bytes');
    const arp = Buffer.from(udp);
    arp.writeUInt16BE(0x0806, 12);
    expect(formatPacket(summarize({ data: arp, length: 60, ifindex: 3, direction: 'broadcast', protocol: 0x806 }))).toBe('broadcast arp  60 bytes');
    const z = { packets: 0, bytes: 0 };
    expect(formatStats({ kept: { packets: 2, bytes: 92 }, no_rule: { packets: 5, bytes: 300 }, not_ipv4: z, malformed: z }))
      .toBe('kept 2 (92 bytes); refused: no_rule 5');
  });
});

describe('a lesson that takes <iface> but attaches no XDP (xdp: false)', () => {
  it('has no --mode or --force', async () => {
    const { lessonCommand } = await import('../../src/cli/lesson.js');
    const cmd = lessonCommand({ lesson: 'sock_filter', description: 'd', xdp: false, attach: () => {}, run: async () => {} });
    const names = cmd.options.map((o) => o.long);
    expect(names).not.toContain('--mode');
    expect(names).not.toContain('--force');
    cmd.parse(['node', 'x', 'veth0']);
    expect(cmd.args).toEqual(['veth0']);
    expect(() => lessonCommand({ lesson: 'sock_filter', description: 'd', xdp: false, attach: () => {}, run: async () => {} })
      .parse(['node', 'x', 'veth0', '--mode', 'skb'])).toThrow("unknown option '--mode'");
    const xdp = lessonCommand({ lesson: 'hello', description: 'd', run: async () => {} });
    expect(xdp.options.map((o) => o.long)).toContain('--mode');
  });
});
