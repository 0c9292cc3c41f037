/**
 * The load balancer's struct codecs (src/lb/layout.ts) against the contract
 * (LB_CONTRACT.md, bpf/xdp_dnat/xdp_dnat.h): sizes, member offsets, byte
 * order, and the Maglev table codec.
 */
import { describe, expect, it } from 'vitest';
import { LB_MAGLEV_SIZE, backendStruct, maglevTableCodec, serviceCounterStruct, serviceInfoStruct, serviceKeyStruct } from '../../src/lb/layout.js';

const members = (c: { layout: { size: number; fields: ReadonlyArray<{ name: string; offset: number; size: number }> } }) =>
  [c.layout.size, ...c.layout.fields.map((f) => `${f.name}@${f.offset}:${f.size}`)];

describe('load balancer layouts', () => {
  it('match the contract member by member', () => {
    expect(members(serviceKeyStruct)).toEqual([8, 'vip@0:4', 'port@4:2', 'proto@6:1', 'pad@7:1']);
    expect(members(serviceInfoStruct)).toEqual([8, 'id@0:4', 'backend_count@4:4']);
    expect(members(backendStruct)).toEqual([16, 'ip@0:4', 'port@4:2', 'flags@6:2', 'service_id@8:4', 'weight@12:4']);
    expect(members(serviceCounterStruct)).toEqual([16, 'packets@0:8', 'bytes@8:8']);
  });

  it('write addresses and ports in network order, the rest in host order', () => {
    const b = Buffer.alloc(16, 0xee);
    backendStruct.encode({ ip: 0x0af40105, port: 8080, flags: 1, service_id: 7, weight: 3 }, b);
    expect([...b.subarray(0, 6)]).toEqual([10, 244, 1, 5, 0x1f, 0x90]);
    expect(b.readUInt16LE(6)).toBe(1);
    expect(b.readUInt32LE(8)).toBe(7);
    expect(b.readUInt32LE(12)).toBe(3);
  });

  it('maglev_table: LB_MAGLEV_SIZE u32 slots, round trip, wrong length refused', () => {
    const c = maglevTableCodec();
    expect(c.size).toBe(4 * LB_MAGLEV_SIZE);
    const t = Uint32Array.from({ length: LB_MAGLEV_SIZE }, (_, i) => i * 7 + 1);
    const buf = Buffer.alloc(c.size + 8);
    c.encode(t, buf, 8);
    expect(buf.readUInt32LE(8 + 4 * 5)).toBe(36);
    expect(c.decode(buf, 8)).toEqual(t);
    expect(() => c.encode(new Uint32Array(3), buf)).toThrow(`maglev_table: expected ${LB_MAGLEV_SIZE} backend ids, got 3`);
  });
});
