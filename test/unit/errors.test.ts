/**
 * Error formatting: BpfError's "verb object: cause (ENAME)", errno names and
 * messages, the verifier's last relevant lines, check(), and the names of
 * XDP actions and map types used in messages.
 */
import { describe, expect, it } from 'vitest';
import { BpfError, NEEDS_PRIVILEGE, VerifierError, bpfCallError, check, lastRelevant } from '../../src/errors.js';
import { Errno, errnoMessage, errnoName, errnoOf, errnoValue } from '../../src/ffi/errno.js';
import { xdpActionName, XdpAction } from '../../src/xdp.js';
import { mapTypeName, MapType } from '../../src/map.js';

describe('errno names and messages', () => {
  it('names errno values, canonical names first', () => {
    expect(errnoName(2)).toBe('ENOENT');
    expect(errnoName(-2)).toBe('ENOENT');
    expect(errnoName(1)).toBe('EPERM');
    expect(errnoName(7)).toBe('E2BIG');
    expect(errnoName(11)).toBe('EAGAIN'); // not EWOULDBLOCK
    expect(errnoName(13)).toBe('EACCES');
    expect(errnoName(16)).toBe('EBUSY');
    expect(errnoName(17)).toBe('EEXIST');
    expect(errnoName(19)).toBe('ENODEV');
    expect(errnoName(22)).toBe('EINVAL');
    expect(errnoName(95)).toBe('EOPNOTSUPP'); // not ENOTSUP
    expect(errnoName(524)).toBe('ENOTSUPP'); // kernel-internal
    expect(errnoName(4000)).toBe('LIBBPF_ERRNO__LIBELF'); // libbpf.h: LIBELF = __LIBBPF_ERRNO__START
    expect(errnoName(4001)).toBe('LIBBPF_ERRNO__FORMAT');
    expect(errnoName(4007)).toBe('LIBBPF_ERRNO__VERIFY');
    expect(errnoName(99999)).toBe('E99999');
  });

  it('names every Errno constant after itself', () => {
    for (const [name, n] of Object.entries(Errno)) {
      if (name !== 'LIBBPF_ERRNO__START') expect(errnoName(n)).toBe(name);
    }
  });

  it('maps names back to values', () => {
    expect(errnoValue('EEXIST')).toBe(17);
    expect(errnoValue('ENOENT')).toBe(2);
    expect(() => errnoValue('ENOPE')).toThrow(/unknown errno name ENOPE/);
  });

  it("gives libc's messages, and one for the kernel's ENOTSUPP", () => {
    expect(errnoMessage(2)).toBe('No such file or directory');
    expect(errnoMessage(-1)).toBe('Operation not permitted');
    expect(errnoMessage(524)).toBe('Operation not supported by the kernel');
    expect(errnoMessage(99999)).toMatch(/99999/);
  });

  it("normalises libbpf's negative returns", () => {
    expect(errnoOf(-22)).toBe(22);
    expect(errnoOf(0)).toBe(0);
    expect(errnoOf(5)).toBe(0);
  });
});

describe('BpfError', () => {
  it('reads "verb object: cause (ENAME)" with the libc message as default cause', () => {
    const e = new BpfError('open pinned map /sys/fs/bpf/x', 2);
    expect(e.message).toBe('open pinned map /sys/fs/bpf/x: No such file or directory (ENOENT)');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('BpfError');
    expect([e.errno, e.code, e.op]).toEqual([2, 'ENOENT', 'open pinned map /sys/fs/bpf/x']);
    expect(String(e)).toBe('BpfError: open pinned map /sys/fs/bpf/x: No such file or directory (ENOENT)');
  });

  it('takes a detail instead of the libc message, and a negative errno', () => {
    const e = new BpfError('update map counts', -7, 'map is full (64 entries)');
    expect(e.message).toBe('update map counts: map is full (64 entries) (E2BIG)');
    expect([e.errno, e.code]).toEqual([7, 'E2BIG']);
  });

  it('check() passes non-negative returns through and throws on -errno', () => {
    expect(check(0, 'x')).toBe(0);
    expect(check(42, 'x')).toBe(42);
    expect(() => check(-16, 'attach thing')).toThrow('attach thing: Device or resource busy (EBUSY)');
    // -1 with errno given separately (the C convention)
    expect(() => check(-1, 'do thing', 13)).toThrow('do thing: Permission denied (EACCES)');
    expect(() => check(-1, 'do thing')).toThrow(/\(EPERM\)$/);
    let thrown: unknown;
    try { check(-13, 'load'); } catch (e) { thrown = e; }
    expect(thrown).toBeInstanceOf(BpfError);
    expect(thrown).toMatchObject({ errno: Errno.EACCES, code: 'EACCES', op: 'load' });
  });
});

describe('bpfCallError', () => {
  it('names the missing privileges for EPERM, and is a plain BpfError otherwise', () => {
    expect(bpfCallError('create map m', -Errno.EPERM).message).toBe(`create map m: ${NEEDS_PRIVILEGE} (EPERM)`);
    expect(NEEDS_PRIVILEGE).toMatch(/root \(CAP_BPF/);
    expect(NEEDS_PRIVILEGE).not.toMatch(/RLIMIT_MEMLOCK|ulimit/);
    expect(bpfCallError('create map m', Errno.EINVAL).message).toBe('create map m: Invalid argument (EINVAL)');
    expect(bpfCallError('create map m', Errno.E2BIG, 'too big').message).toBe('create map m: too big (E2BIG)');
  });
});

describe('VerifierError and lastRelevant', () => {
  const log = [
    'func#0 @0',
    '0: R1=ctx() R10=fp0',
    '; int x = *(u8 *)data; @ prog.c:10',
    '0: (61) r2 = *(u32 *)(r1 +0)          ; R1=ctx() R2_w=pkt(r=0)',
    '1: (61) r3 = *(u32 *)(r1 +4)          ; R3_w=pkt_end()',
    '2: (bf) r4 = r2',
    '3: (07) r4 += 14',
    '4: (71) r0 = *(u8 *)(r2 +12)',
    'invalid access to packet, off=12 size=1, R2(id=0,off=12,r=0)',
    'R2 offset is outside of the packet',
    'processed 5 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0',
    '-- END PROG LOAD LOG --',
  ];

  it('selects the last lines before the trailing statistics', () => {
    expect(lastRelevant(log)).toEqual(log.slice(4, 10));
    expect(lastRelevant(log, 2)).toEqual(['invalid access to packet, off=12 size=1, R2(id=0,off=12,r=0)', 'R2 offset is outside of the packet']);
    expect(lastRelevant([...log.slice(0, 10), 'verification time 12 usec', 'stack depth 0', 'processed 5 insns'], 1)).toEqual(['R2 offset is outside of the packet']);
    expect(lastRelevant(log.slice(0, 3), 6)).toEqual(log.slice(0, 3));
    expect(lastRelevant([])).toEqual([]);
    expect(lastRelevant(['processed 1 insns'])).toEqual([]);
  });

  it('shows the last relevant lines in its message and keeps the whole log', () => {
    const e = new VerifierError('load object prog.bpf.o', 'prog', 13, `${log.join('\n')}\n\n`);
    expect(e).toBeInstanceOf(BpfError);
    expect(e.name).toBe('VerifierError');
    expect(e.program).toBe('prog');
    expect(e.code).toBe('EACCES');
    expect(e.log).toEqual(log);
    expect(e.message).toBe(`load object prog.bpf.o: verifier rejected program prog:\n  ${log.slice(4, 10).join('\n  ')} (EACCES)`);
    expect(e.message).not.toContain('processed 5 insns');
    expect(e.message).not.toContain('func#0');
    expect(e.truncated).toBe(false);
  });

  it('says when the log filled its buffer', () => {
    const e = new VerifierError('load object prog.bpf.o', 'prog', 13, log.join('\n'), true);
    expect(e.truncated).toBe(true);
    expect(e.message.split('\n')[0]).toBe('load object prog.bpf.o: verifier rejected program prog (log truncated: it filled its buffer; raise logSize):');
  });
});

describe('names used in messages', () => {
  it('names XDP actions', () => {
    expect(xdpActionName(XdpAction.ABORTED)).toBe('XDP_ABORTED');
    expect(xdpActionName(XdpAction.DROP)).toBe('XDP_DROP');
    expect(xdpActionName(XdpAction.PASS)).toBe('XDP_PASS');
    expect(xdpActionName(XdpAction.TX)).toBe('XDP_TX');
    expect(xdpActionName(XdpAction.REDIRECT)).toBe('XDP_REDIRECT');
    expect(xdpActionName(9)).toBe('XDP action 9');
  });

  it('names map types', () => {
    expect(mapTypeName(MapType.HASH)).toBe('hash');
    expect(mapTypeName(MapType.PERCPU_ARRAY)).toBe('percpu_array');
    expect(mapTypeName(MapType.LRU_HASH)).toBe('lru_hash');
    expect(mapTypeName(MapType.RINGBUF)).toBe('ringbuf');
    expect(mapTypeName(999)).toBe('type 999');
  });
});
