/**
 * The parts of bpfts that need no kernel: the tc filter dump parser, the
 * lesson descriptions read from loader sources, the REPL's history path,
 * enum names, and the exit statuses runBpfts maps errors to.
 */
import { describe, expect, it } from 'vitest';
import { CLSACT_PARENT, attributes, dumpEnded, parseTfilterDump, tfilterDumpRequest } from '../../src/inspect/netlink.js';
import { descriptionOf } from '../../src/cli/bpfts/run.js';
import { historyPath } from '../../src/cli/bpfts/repl.js';
import { attachTypeName, linkTypeName, progTypeName } from '../../src/inspect/names.js';
import { UsageError, errorLine, parseId, runBpfts } from '../../src/cli/bpfts/common.js';
import { newCommand } from '../../src/cli/command.js';
import { BpfError, Errno } from '../../src/errors.js';

function attr(type: number, data: Buffer): Buffer {
  const len = 4 + data.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  data.copy(b, 4);
  return b;
}
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const str = (s: string) => Buffer.from(`${s}\0`);

function nlmsg(type: number, body: Buffer): Buffer {
  const b = Buffer.alloc(16 + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(type, 4);
  body.copy(b, 16);
  return b;
}

/** An RTM_NEWTFILTER message as the kernel sends it for a bpf filter. */
function filterMsg(ifindex: number, handle: number, prio: number, opts: Buffer | undefined, kind = 'bpf'): Buffer {
  const tc = Buffer.alloc(20);
  tc.writeInt32LE(ifindex, 4);
  tc.writeUInt32LE(handle, 8);
  tc.writeUInt32LE(CLSACT_PARENT.egress, 12);
  tc.writeUInt32LE(((prio << 16) | 0x0300) >>> 0, 16); // protocol ETH_P_ALL (network order)
  return nlmsg(44, Buffer.concat([tc, attr(1, str(kind)), ...(opts ? [attr(2, opts)] : [])]));
}

describe('tc filter dumps', () => {
  it('builds the dump request: RTM_GETTFILTER, NLM_F_REQUEST|NLM_F_DUMP, the ifindex and clsact parent', () => {
    const r = tfilterDumpRequest(7, CLSACT_PARENT.ingress);
    expect(r.length).toBe(36);
    expect(r.readUInt32LE(0)).toBe(36);
    expect(r.readUInt16LE(4)).toBe(46);
    expect(r.readUInt16LE(6)).toBe(0x301);
    expect(r.readInt32LE(20)).toBe(7);
    expect(r.readUInt32LE(28)).toBe(0xfffffff2);
  });

  it('parses bpf filters (id, name, handle, priority, direct-action), skipping the chain headers and other kinds', () => {
    const opts = Buffer.concat([attr(7, str('tc_dnat_reply:[42]')), attr(8, u32(1)), attr(11, u32(42))]);
    const d = Buffer.concat([
      filterMsg(3, 0, 49152, undefined), // the per-priority header: no options
      filterMsg(3, 1, 49152, opts),
      filterMsg(3, 2, 5, attr(1, u32(9)), 'u32'),
      nlmsg(3, u32(0)),
    ]);
    expect(dumpEnded(d)).toBe(true);
    expect(parseTfilterDump([d])).toEqual([{ ifindex: 3, parent: CLSACT_PARENT.egress, handle: 1, priority: 49152, progId: 42, name: 'tc_dnat_reply:[42]', directAction: true }]);
  });

  it('returns the errno of an error reply; an ack (errno 0) is none', () => {
    const err = Buffer.alloc(4);
    err.writeInt32LE(-Errno.EINVAL);
    expect(parseTfilterDump([nlmsg(2, err)])).toEqual({ errno: Errno.EINVAL });
    expect(parseTfilterDump([nlmsg(2, Buffer.alloc(4))])).toEqual([]);
    expect(dumpEnded(filterMsg(1, 1, 1, undefined))).toBe(false);
  });

  it('stops at a truncated attribute', () => {
    const b = Buffer.concat([attr(1, u32(5)), Buffer.from([40, 0, 2, 0])]);
    expect(attributes(b, 0, b.length)).toEqual([{ type: 1, data: u32(5) }]);
  });
});

describe('lesson descriptions', () => {
  it('reads the first description literal, in any quotes, with escapes', () => {
    expect(descriptionOf("await runLesson({\n  lesson: 'x',\n  description: 'count packets: a \\'hash\\' map',\n})")).toBe("count packets: a 'hash' map");
    expect(descriptionOf('description: "receive-path latency (bpftrace\'s hist())", json: true')).toBe("receive-path latency (bpftrace's hist())");
    expect(descriptionOf('no description here')).toBe('');
  });
});

describe('the REPL history file', () => {
  it('is $LIBBPF_TS_REPL_HISTORY, else under $XDG_STATE_HOME, else ~/.libbpf_ts_history', () => {
    expect(historyPath({ LIBBPF_TS_REPL_HISTORY: '/x/h', XDG_STATE_HOME: '/s' })).toBe('/x/h');
    expect(historyPath({ XDG_STATE_HOME: '/s' })).toBe('/s/libbpf-ts/repl_history');
    expect(historyPath({})).toMatch(/\/\.libbpf_ts_history$/);
  });
});

describe('enum names', () => {
  it('names kernel enums as bpftool does', () => {
    expect([progTypeName(6), progTypeName(3), progTypeName(5), progTypeName(999)]).toEqual(['xdp', 'sched_cls', 'tracepoint', 'type 999']);
    expect([attachTypeName(37), attachTypeName(46), attachTypeName(47)]).toEqual(['xdp', 'tcx_ingress', 'tcx_egress']);
    expect([linkTypeName(6), linkTypeName(7), linkTypeName(11)]).toEqual(['xdp', 'perf_event', 'tcx']);
  });
});

describe('exit statuses and error lines', () => {
  const program = (fn: () => void) => {
    const p = newCommand('bpfts');
    p.command('go').argument('<x>').action(fn);
    return p;
  };
  const argv = (...a: string[]) => ['node', 'bpfts', ...a];

  it('0 ok, 1 failed, 2 bad usage (commander or a UsageError)', async () => {
    expect(await runBpfts(program(() => {}), argv('go', '1'))).toBe(0);
    expect(await runBpfts(program(() => { throw new BpfError('show prog id 9', Errno.ENOENT, 'no program with id 9'); }), argv('go', '1'))).toBe(1);
    expect(await runBpfts(program(() => { throw new UsageError("'x' is not a program id"); }), argv('go', '1'))).toBe(2);
    const stderr = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write; // commander's own message
    try {
      expect(await runBpfts(program(() => {}), argv('go'))).toBe(2);
      expect(await runBpfts(program(() => {}), argv('nope'))).toBe(2);
    } finally {
      process.stderr.write = stderr;
    }
  });

  it('an error is one line: "bpfts: verb object: cause (ENAME)"', () => {
    expect(errorLine(new BpfError('show prog id 9', Errno.ENOENT, 'no program with id 9'))).toBe('bpfts: show prog id 9: no program with id 9 (ENOENT)');
    expect(errorLine(new Error('first\nsecond'))).toBe('bpfts: first');
    expect(() => parseId('id:x', 'link')).toThrow("'id:x' is not a link id");
    expect(parseId('id:12', 'link')).toBe(12);
  });
});
