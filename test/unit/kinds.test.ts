/**
 * The program, map, attach and link type tables against the kernel headers:
 * every enumerator /usr/include/linux/bpf.h names is in the table with its
 * number, and the names are the ones bpftool prints (libbpf's, for every
 * number this libbpf knows).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AttachType, LinkType, MapType, ProgType, attachTypeName, linkTypeName, mapTypeName, progTypeName } from '../../src/kinds.js';
import { assertProgType, hookOf } from '../../src/program.js';
import { bpfl } from '../../src/ffi/loading.js';
import { BpfError } from '../../src/errors.js';

/** The enumerators of `enum name { ... }` in a C header, with their values (aliases resolved, MAX markers left out). */
function parseEnum(header: string, name: string): Map<string, number> {
  const m = new RegExp(`enum ${name} \\{([\\s\\S]*?)\\n\\};`).exec(header);
  if (!m) throw new Error(`no enum ${name}`);
  const body = m[1].replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const out = new Map<string, number>();
  let next = 0;
  for (const item of body.split(',').map((x) => x.trim()).filter(Boolean)) {
    const [key, value] = item.split('=').map((x) => x.trim());
    let v = next;
    if (value !== undefined) v = /^\d+$/.test(value) ? Number(value) : out.get(value) ?? Number.NaN;
    if (Number.isNaN(v)) throw new Error(`cannot evaluate ${item}`);
    next = v + 1;
    if (!/(^|_)MAX_|^__MAX/.test(key)) out.set(key, v);
  }
  return out;
}

const header = readFileSync('/usr/include/linux/bpf.h', 'utf8');
const cases = [
  { enumName: 'bpf_prog_type', prefix: 'BPF_PROG_TYPE_', table: ProgType as Record<string, number>, name: progTypeName, libbpf: bpfl.prog_type_str },
  { enumName: 'bpf_map_type', prefix: 'BPF_MAP_TYPE_', table: MapType as Record<string, number>, name: mapTypeName, libbpf: bpfl.map_type_str },
  { enumName: 'bpf_attach_type', prefix: 'BPF_', table: AttachType as Record<string, number>, name: attachTypeName, libbpf: bpfl.attach_type_str },
  { enumName: 'bpf_link_type', prefix: 'BPF_LINK_TYPE_', table: LinkType as Record<string, number>, name: linkTypeName, libbpf: bpfl.link_type_str },
];

describe('kernel type tables', () => {
  it('parses enums with implicit and explicit values and aliases', () => {
    const e = parseEnum('enum x {\n\tA, /* one */\n\tB = 5,\n\tC,\n\tC_OLD = C,\n\t__MAX_X\n};', 'x');
    expect([...e]).toEqual([['A', 0], ['B', 5], ['C', 6], ['C_OLD', 6]]);
  });

  for (const c of cases) {
    it(`${c.enumName}: every enumerator of linux/bpf.h is in the table, with its number`, () => {
      const kernel = parseEnum(header, c.enumName);
      expect(kernel.size).toBeGreaterThan(5);
      const values = new Set(Object.values(c.table));
      const missing = [...kernel].filter(([k, v]) => !(c.table[k.slice(c.prefix.length)] === v || (/_DEPRECATED$/.test(k) && values.has(v))));
      expect(missing).toEqual([]);
    });

    it(`${c.enumName}: names are bpftool's (libbpf's) for every number libbpf knows`, () => {
      let compared = 0;
      for (const v of Object.values(c.table)) {
        const lib = c.libbpf(v);
        if (lib === null) continue;
        expect(c.name(v), `${c.enumName} ${v}`).toBe(lib);
        compared++;
      }
      expect(compared).toBeGreaterThan(5);
    });
  }

  it('names numbers nobody knows', () => {
    expect(progTypeName(999)).toBe('type 999');
    expect(mapTypeName(MapType.LPM_TRIE)).toBe('lpm_trie');
    expect(attachTypeName(AttachType.CGROUP_INET4_CONNECT)).toBe('cgroup_inet4_connect');
  });
});

describe('assertProgType', () => {
  const tp = { name: 'count', section: 'tp/syscalls/sys_enter_openat', type: ProgType.TRACEPOINT };
  it('lets the right type through', () => {
    expect(() => assertProgType(tp, [ProgType.TRACEPOINT], 'tracepoint syscalls:sys_enter_openat')).not.toThrow();
  });
  it('says what the program is and what it attaches to, in one line', () => {
    let err: unknown;
    try { assertProgType(tp, [ProgType.XDP], 'xdp on veth0'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(BpfError);
    expect((err as BpfError).message).toBe('attach program count to xdp on veth0: count is a tracepoint program (section tp/syscalls/sys_enter_openat), not xdp: it attaches to a tracepoint (attachTracepoint) (EINVAL)');
    expect((err as BpfError).message).not.toContain('\n');
  });
  it('has a hook for every program type but unspec', () => {
    const without = Object.entries(ProgType).filter(([k, v]) => k !== 'UNSPEC' && hookOf(v) === 'an unknown hook');
    expect(without).toEqual([]);
  });
});
