/**
 * Parsing of rtnetlink route and neighbour notifications (src/net/rtmsg.ts),
 * on bytes captured from a NETLINK_ROUTE socket in RTMGRP_IPV4_ROUTE |
 * RTMGRP_NEIGH (Linux 6.18) while, in a namespace with a veth d0 (ifindex 3,
 * 10.9.0.1/24), these ran one after another:
 *   ip route add 10.20.0.0/16 via 10.9.0.2 dev d0
 *   ip neigh replace 10.9.0.2 lladdr 02:00:00:00:be:ef dev d0 nud permanent
 *   ip neigh replace 10.9.0.2 lladdr 02:00:00:00:00:22 dev d0 nud reachable
 *   ip neigh del 10.9.0.2 dev d0          (two messages: failed, then deleted)
 *   ip route del 10.20.0.0/16
 *   ip -6 neigh replace fe80::2 lladdr 02:00:00:00:00:33 dev d0
 */
import { describe, expect, it } from 'vitest';
import { ForwardingChanges, NUD, parseRtDatagram, type RtEvent } from '../../src/net/rtmsg.js';
import { describeChange } from '../../src/net/rtwatch.js';

const CAPTURED = [
  '3c00000018000006df46106bfe1b000002100000fe0300010000000008000f00fe000000080001000a140000080005000a0900020800040003000000',
  '4c0000001c00000000000000031c0000020000000300000080000001080001000a0900020a00020002000000beef000008000400000000001400030000000000000000000000000001000000',
  '4c0000001c00000000000000051c0000020000000300000002000001080001000a0900020a000200020000000022000008000400000000001400030000000000000000000000000002000000',
  '400000001c00000000000000071c0000020000000300000020000001080001000a09000208000400000000001400030016000000160000001600000001000000',
  '400000001d0000000000000000000000020000000300000020000001080001000a09000208000400000000001400030016000000160000001600000000000000',
  '3c00000019000000e046106b091c000002100000fe0300010000000008000f00fe000000080001000a140000080005000a0900020800040003000000',
  '580000001c000000000000000b1c00000a000000030000008000000114000100fe8000000000000000000000000000020a000200020000000033000008000400000000001400030000000000000000000000000001000000',
].map((h) => Buffer.from(h, 'hex'));

const ROUTE = { kind: 'route', dst: '10.20.0.0/16', table: 254, type: 1, oif: 3, gateway: '10.9.0.2' } as const;

describe('parseRtDatagram', () => {
  it('decodes the captured route and neighbour notifications, and skips the IPv6 neighbour', () => {
    expect(CAPTURED.map((d) => parseRtDatagram(d))).toEqual([
      [{ ...ROUTE, action: 'added' }],
      [{ kind: 'neighbour', action: 'changed', ip: '10.9.0.2', ifindex: 3, mac: '02:00:00:00:be:ef', state: NUD.permanent }],
      [{ kind: 'neighbour', action: 'changed', ip: '10.9.0.2', ifindex: 3, mac: '02:00:00:00:00:22', state: NUD.reachable }],
      [{ kind: 'neighbour', action: 'changed', ip: '10.9.0.2', ifindex: 3, state: NUD.failed }],
      [{ kind: 'neighbour', action: 'removed', ip: '10.9.0.2', ifindex: 3, state: NUD.failed }],
      [{ ...ROUTE, action: 'removed' }],
      [],
    ]);
  });

  it('reads every message of a datagram that holds several', () => {
    const both = Buffer.concat([CAPTURED[0], CAPTURED[1]]);
    expect(parseRtDatagram(both).map((e) => e.kind)).toEqual(['route', 'neighbour']);
  });

  it('a default route has the prefix 0.0.0.0/0 (no RTA_DST)', () => {
    // The captured route with its RTA_DST attribute (type 1) renamed to an unknown type 99, and dst_len 0.
    const d = Buffer.from(CAPTURED[0]);
    d.writeUInt8(0, 17);
    const at = d.indexOf(Buffer.from('080001000a140000', 'hex'));
    d.writeUInt16LE(99, at + 2);
    expect(parseRtDatagram(d)).toEqual([{ ...ROUTE, action: 'added', dst: '0.0.0.0/0' }]);
  });

  it('truncated or malformed datagrams give what parsed before the damage, never throw', () => {
    const two = Buffer.concat([CAPTURED[0], CAPTURED[1]]);
    for (let n = 0; n <= two.length; n++) {
      const got = parseRtDatagram(two.subarray(0, n));
      expect(got.length).toBe(n >= two.length ? 2 : n >= CAPTURED[0].length ? 1 : 0);
    }
    const bad = Buffer.from(CAPTURED[1]);
    bad.writeUInt32LE(8, 0); // nlmsg_len shorter than a header
    expect(parseRtDatagram(bad)).toEqual([]);
    const big = Buffer.from(CAPTURED[1]);
    big.writeUInt32LE(4096, 0); // longer than the datagram
    expect(parseRtDatagram(big)).toEqual([]);
    expect(parseRtDatagram(Buffer.alloc(0))).toEqual([]);
  });
});

describe('ForwardingChanges', () => {
  const neigh = (mac: string | undefined, state: number, action: 'changed' | 'removed' = 'changed'): RtEvent =>
    ({ kind: 'neighbour', action, ip: '10.9.0.2', ifindex: 3, state, ...(mac ? { mac } : {}) });

  it('keeps routes, and neighbours only when their address changes, goes or fails', () => {
    const f = new ForwardingChanges();
    const all = CAPTURED.flatMap((d) => parseRtDatagram(d));
    // The failed and then removed entry counts once: it lost its address at "failed".
    expect(f.filter(all).map((e) => (e.kind === 'route' ? `route ${e.action}` : `neigh ${e.mac ?? 'none'} ${e.action}`))).toEqual([
      'route added', 'neigh 02:00:00:00:be:ef changed', 'neigh 02:00:00:00:00:22 changed', 'neigh none changed', 'route removed',
    ]);
  });

  it('ignores the state changes of a resolved entry with the same address, and unresolved entries', () => {
    const f = new ForwardingChanges();
    expect(f.filter([neigh(undefined, NUD.incomplete)])).toEqual([]);
    expect(f.filter([neigh('02:00:00:00:00:22', NUD.reachable)])).toHaveLength(1);
    expect(f.filter([neigh('02:00:00:00:00:22', NUD.stale), neigh('02:00:00:00:00:22', NUD.delay), neigh('02:00:00:00:00:22', NUD.reachable)])).toEqual([]);
    expect(f.filter([neigh('02:00:00:00:00:23', NUD.reachable)])).toHaveLength(1);
  });

  it('reports the removal of an entry it had not seen (it may have been cached before the watch began)', () => {
    expect(new ForwardingChanges().filter([neigh(undefined, NUD.failed, 'removed')])).toHaveLength(1);
  });
});

describe('describeChange', () => {
  it('one line, at most four changes spelled out', () => {
    const all = CAPTURED.flatMap((d) => parseRtDatagram(d));
    expect(describeChange({ events: all.slice(0, 2), lost: false })).toBe('route 10.20.0.0/16 added, neighbour 10.9.0.2 → 02:00:00:00:be:ef');
    expect(describeChange({ events: all, lost: true })).toBe(
      'route 10.20.0.0/16 added, neighbour 10.9.0.2 → 02:00:00:00:be:ef, neighbour 10.9.0.2 → 02:00:00:00:00:22, neighbour 10.9.0.2 gone, 3 more');
  });
});
