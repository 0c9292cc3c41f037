/**
 * xdp_firewall's user side without a kernel: the LPM key codec and prefix
 * parsing, longest-prefix matching in user space, per-CPU sums, the
 * top-talkers table and its JSON.
 */
import { describe, expect, it } from 'vitest';
import { cidrContains, formatCidr, lpmIpv4, normalizeCidr, parseCidr, sumPerCpu } from '../../src/index.js';
import { FW_REASONS, lpmKeyStruct, matchRule, renderTalkerTable, talkerJson, talkers, type FwStats, type Rule } from '../../src/lessons/xdp_firewall.js';

describe('lpmIpv4 codec', () => {
  it('writes the length in host order and the address in network order, as struct lpm_v4_key', () => {
    const b = Buffer.alloc(8);
    lpmIpv4.encode('192.168.0.0/16', b);
    expect(lpmKeyStruct.decode(b)).toEqual({ prefixlen: 16, data: Uint8Array.from([192, 168, 0, 0]) });
    expect(b.readUInt32LE(0)).toBe(16); // x86: host order is little-endian
    expect(lpmIpv4.decode(b)).toBe('192.168.0.0/16');
    expect(lpmIpv4.size).toBe(lpmKeyStruct.size);
  });

  it('clears host bits and takes a bare address as /32', () => {
    const b = Buffer.alloc(10);
    lpmIpv4.encode('10.1.2.3/8', b, 2);
    expect(lpmIpv4.decode(b, 2)).toBe('10.0.0.0/8');
    lpmIpv4.encode('10.1.2.3', b);
    expect(lpmIpv4.decode(b)).toBe('10.1.2.3/32');
    lpmIpv4.encode('255.255.255.255/0', b);
    expect(lpmIpv4.decode(b)).toBe('0.0.0.0/0');
    expect(normalizeCidr(' 172.16.5.4/12 ')).toBe('172.16.0.0/12');
    expect(formatCidr({ addr: 0xc0a80101, len: 24 })).toBe('192.168.1.0/24');
  });

  it('refuses bad prefixes with a clear error', () => {
    const b = Buffer.alloc(8);
    expect(() => lpmIpv4.encode('10.0.0.0/33', b)).toThrow(new RangeError("bad IPv4 prefix '10.0.0.0/33': the length 33 is over 32"));
    expect(() => lpmIpv4.encode('10.0.0.0/', b)).toThrow("bad IPv4 prefix '10.0.0.0/': the length '' is not a number 0-32");
    expect(() => lpmIpv4.encode('10.0.0.0/x', b)).toThrow(TypeError);
    expect(() => lpmIpv4.encode('10.0.0.0/08', b)).toThrow(TypeError);
    expect(() => lpmIpv4.encode('10.0.0.0/-1', b)).toThrow(TypeError);
    expect(() => lpmIpv4.encode('10.0.0/8', b)).toThrow("bad IPv4 prefix '10.0.0/8': '10.0.0' is not an IPv4 address");
    expect(() => lpmIpv4.encode('256.0.0.0/8', b)).toThrow(TypeError);
    expect(() => lpmIpv4.encode('10.0.0.0/8/8', b)).toThrow(TypeError);
    expect(() => parseCidr('')).toThrow(TypeError);
  });

  it('tells whether an address is inside a prefix', () => {
    expect(cidrContains('192.168.0.0/16', '192.168.77.1')).toBe(true);
    expect(cidrContains('192.168.0.0/16', '192.169.0.1')).toBe(false);
    expect(cidrContains('0.0.0.0/0', '8.8.8.8')).toBe(true);
    expect(cidrContains('10.0.0.1/32', '10.0.0.1')).toBe(true);
  });
});

describe('longest prefix match in user space', () => {
  const rules: Rule[] = [
    { prefix: '10.0.0.0/8', action: 'drop' },
    { prefix: '10.1.0.0/16', action: 'allow' },
    { prefix: '10.1.2.3/32', action: 'drop' },
  ];
  it('picks the longest matching prefix', () => {
    expect(matchRule(rules, '10.9.9.9')?.prefix).toBe('10.0.0.0/8');
    expect(matchRule(rules, '10.1.9.9')?.prefix).toBe('10.1.0.0/16');
    expect(matchRule(rules, '10.1.2.3')?.action).toBe('drop');
    expect(matchRule(rules, '11.0.0.1')).toBeUndefined();
  });
});

describe('per-CPU sums', () => {
  it('adds numbers, bigints and the numeric fields of structs', () => {
    expect(sumPerCpu([1, 2, 3])).toBe(6);
    expect(sumPerCpu([1n, 2n])).toBe(3n);
    expect(sumPerCpu([{ packets: 1, bytes: 60, name: 'a' }, { packets: 2, bytes: 100, name: 'b' }])).toEqual({ packets: 3, bytes: 160, name: 'a' });
  });
});

describe('top talkers', () => {
  const stats = Object.fromEntries(FW_REASONS.map((r) => [r, 0])) as FwStats;
  stats.pass_no_rule = 30;
  stats.drop_prefix = 5;
  const cur = [
    { source: '10.0.0.2', packets: 10, bytes: 1000, dropped: 0, droppedBytes: 0 },
    { source: '10.0.0.3', packets: 20, bytes: 1200, dropped: 5, droppedBytes: 300 },
    { source: '10.0.0.1', packets: 5, bytes: 500, dropped: 0, droppedBytes: 0 },
  ];
  const prev = new Map([['10.0.0.3', { source: '10.0.0.3', packets: 18, bytes: 1080, dropped: 5, droppedBytes: 300 }]]);

  it('sorts by rate, then packets, and keeps the top N', () => {
    const t = talkers(cur, prev, 2, 2);
    expect(t.map((x) => [x.source, x.packetsPerSec, x.bytesPerSec, x.droppedPerSec])).toEqual([
      ['10.0.0.2', 5, 500, 0], ['10.0.0.1', 2.5, 250, 0],
    ]);
  });

  it('renders a table and JSON', () => {
    const time = new Date('2025-01-02T03:04:05.000Z');
    const s = { time, elapsed: 2, sourceCount: 3, top: talkers(cur, prev, 2, 3), stats, rules: 2 };
    expect(renderTalkerTable(s)).toEqual([
      '03:04:05  3 sources, 2 rules, last 2.0 s',
      'source             packets        bytes    pkt/s  bytes/s    dropped   drop/s',
      '10.0.0.2                10         1000      5.0    500.0          0      0.0',
      '10.0.0.1                 5          500      2.5    250.0          0      0.0',
      '10.0.0.3                20         1200      1.0     60.0          5      0.0',
      'dropped 5; packets: pass_no_rule 30, drop_prefix 5',
      '',
    ]);
    const j = JSON.parse(talkerJson(s));
    expect(j.top[2]).toEqual({ source: '10.0.0.3', packets: 20, bytes: 1200, dropped: 5, droppedBytes: 300, packetsPerSec: 1, bytesPerSec: 60, droppedPerSec: 0 });
    expect(j.sources).toBe(3);
    expect(j.stats.drop_prefix).toBe(5);
  });
});
