/**
 * The compatibility suite: one program of every program type and one map
 * of every map type (bpf/testdata/compat_progs.bpf.c, compat_maps.bpf.c),
 * each loaded through BpfObject on this kernel, then attached, test-run or
 * used through the library with its expected result. Types the kernel
 * lacks (kprobes, fentry, the BPF LSM here) are probed (features.ts): where
 * a probe finds the feature the success path runs, where it does not the
 * one-line explanation is checked. Types whose attach call other parts of
 * the library provide (perf_event, cgroup, socket, sockmap, netns) are
 * loaded and checked by type only ("load" below).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { BpfObject, ProgType, RingBufReader, XdpAction, mapInfoByFd, possibleCpus, struct, bytes, u32, u64, type Program } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { probeBpfLsm, probeFentry, probeKprobes } from '../src/features.js';
import { parentPid } from '../src/ffi/sys.js';
import { ifNameToIndex } from '../src/ffi/sys.js';
import { kernelTests } from './helpers/kernel.js';
import { throwsBpf } from './helpers/expect.js';

/** An Ethernet + IPv4 + UDP frame of 64 bytes. */
function ipv4Frame(): Buffer {
  const f = Buffer.alloc(64);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(50, 16);
  f[22] = 64;
  f[23] = 17;
  Buffer.from([127, 0, 0, 1, 127, 0, 0, 1]).copy(f, 26);
  f.writeUInt16BE(1234, 34);
  f.writeUInt16BE(53, 36);
  f.writeUInt16BE(30, 38);
  return f;
}

type Hits = { get(i: number): number | undefined };
interface ProgCase {
  prog: string;
  type: number;
  /** What is done after load (absent: only loaded, its attach belongs to another part of the library). */
  exercise?: (p: Program, hits: Hits, obj: BpfObject) => void;
  /** When the kernel lacks the feature: the probe, and the one-line load error expected without it. */
  needs?: { probe: () => boolean; error: RegExp; loadsAnyway?: boolean };
  /** Set before load (old-style sections). */
  setup?: (p: Program) => void;
  /** The library call that attaches it, when that is elsewhere (for the report). */
  attachedBy?: string;
}

const run = (retval: number) => (p: Program) => expect(p.testRun({ data: ipv4Frame() }).retval).toBe(retval);
const sleepBriefly = () => spawnSync('sleep', ['0.01']);

const PROGS: ProgCase[] = [
  // a socket filter sees the packet from its network header: 64 - 14 bytes
  { prog: 'c_socket_filter', type: ProgType.SOCKET_FILTER, exercise: run(50), attachedBy: 'attachSocket' },
  {
    prog: 'c_kprobe', type: ProgType.KPROBE,
    needs: { probe: probeKprobes, loadsAnyway: true, error: /^attach kprobe do_nanosleep: this kernel has no kprobes \(CONFIG_KPROBES off\) \(\w+\)$/ },
    exercise: (p, hits) => {
      using _l = p.attachKprobe('do_nanosleep');
      sleepBriefly();
      expect(hits.get(0)).toBeGreaterThan(0);
    },
  },
  { prog: 'c_sched_cls', type: ProgType.SCHED_CLS, exercise: run(0) },
  { prog: 'c_sched_act', type: ProgType.SCHED_ACT, exercise: run(0) },
  {
    prog: 'c_tracepoint', type: ProgType.TRACEPOINT, exercise: (p, hits) => {
      using _l = p.attachTracepoint('syscalls', 'sys_enter_getppid');
      for (let i = 0; i < 3; i++) parentPid();
      expect(hits.get(1)).toBe(3);
    },
  },
  { prog: 'c_xdp', type: ProgType.XDP, exercise: run(XdpAction.PASS) },
  { prog: 'c_perf_event', type: ProgType.PERF_EVENT, attachedBy: 'attachPerfEvent' },
  { prog: 'c_cgroup_skb', type: ProgType.CGROUP_SKB, exercise: run(1), attachedBy: 'attachCgroup' },
  { prog: 'c_cgroup_sock', type: ProgType.CGROUP_SOCK, attachedBy: 'attachCgroup' },
  { prog: 'c_lwt_in', type: ProgType.LWT_IN, exercise: run(0) },
  { prog: 'c_lwt_out', type: ProgType.LWT_OUT, exercise: run(0) },
  { prog: 'c_lwt_xmit', type: ProgType.LWT_XMIT, exercise: run(0) },
  { prog: 'c_sock_ops', type: ProgType.SOCK_OPS, attachedBy: 'attachCgroup' },
  { prog: 'c_sk_skb', type: ProgType.SK_SKB, attachedBy: 'a sockmap (not in the library yet)' },
  { prog: 'c_cgroup_device', type: ProgType.CGROUP_DEVICE, attachedBy: 'attachCgroup' },
  { prog: 'c_sk_msg', type: ProgType.SK_MSG, attachedBy: 'a sockmap (not in the library yet)' },
  {
    prog: 'c_raw_tracepoint', type: ProgType.RAW_TRACEPOINT, exercise: (p, hits) => {
      using _l = p.attachRawTracepoint('sys_enter');
      parentPid();
      expect(hits.get(3)).toBeGreaterThan(0);
    },
  },
  { prog: 'c_cgroup_sock_addr', type: ProgType.CGROUP_SOCK_ADDR, attachedBy: 'attachCgroup' },
  { prog: 'c_sk_reuseport', type: ProgType.SK_REUSEPORT, attachedBy: 'SO_ATTACH_REUSEPORT_EBPF (not in the library)' },
  { prog: 'c_flow_dissector', type: ProgType.FLOW_DISSECTOR, exercise: run(0), attachedBy: 'a netns (not in the library yet)' },
  { prog: 'c_cgroup_sysctl', type: ProgType.CGROUP_SYSCTL, attachedBy: 'attachCgroup' },
  { prog: 'c_cgroup_sockopt', type: ProgType.CGROUP_SOCKOPT, attachedBy: 'attachCgroup' },
  {
    prog: 'c_tracing', type: ProgType.TRACING,
    needs: { probe: probeFentry, error: /^load object compat_progs\.bpf\.o: load program c_tracing: the kernel refuses fentry\/fexit programs .* \(EPERM\)$/ },
    exercise: (p, hits) => {
      using _l = p.attachTracing();
      sleepBriefly();
      expect(hits.get(4)).toBeGreaterThan(0);
    },
  },
  {
    prog: 'c_tp_btf', type: ProgType.TRACING, exercise: (p, hits) => {
      using _l = p.attachTracing();
      parentPid();
      expect(hits.get(5)).toBeGreaterThan(0);
    },
  },
  { prog: 'c_iter', type: ProgType.TRACING, exercise: (p) => { using it = p.attachIter(); expect(it.text()).toBe(`${process.pid}\n`); } },
  {
    prog: 'c_lsm', type: ProgType.LSM,
    needs: { probe: probeBpfLsm, error: /^load object compat_progs\.bpf\.o: load program c_lsm: the kernel does not run the BPF LSM \(no "bpf" in \/sys\/kernel\/security\/lsm: .*\), which lsm\/ programs need \(\w+\)$/ },
    exercise: (p, hits) => {
      using _l = p.attach();
      closeSync(openSync('/proc/self/comm', 'r'));
      expect(hits.get(6)).toBeGreaterThan(0);
    },
  },
  {
    prog: 'c_sk_lookup', type: ProgType.SK_LOOKUP, attachedBy: 'a netns (not in the library yet)', exercise: (p) => {
      const ctx = Buffer.alloc(72); // struct bpf_sk_lookup: a TCP/IPv4 lookup from 127.0.0.1 to 127.0.0.1:80
      ctx.writeUInt32LE(2, 8); // family AF_INET
      ctx.writeUInt32LE(6, 12); // protocol TCP
      Buffer.from([127, 0, 0, 1]).copy(ctx, 16);
      ctx.writeUInt16BE(40000, 36);
      Buffer.from([127, 0, 0, 1]).copy(ctx, 40);
      ctx.writeUInt32LE(80, 60);
      expect(p.testRun({ ctx }).retval).toBe(1); // SK_PASS
    },
  },
  {
    prog: 'c_syscall', type: ProgType.SYSCALL, exercise: (p) => {
      const ctx = Buffer.alloc(16);
      ctx.writeUInt32LE(3, 0);
      ctx.writeUInt32LE(4, 4);
      expect(p.testRun({ ctx }).retval).toBe(42);
      expect(ctx.readBigUInt64LE(8)).toBe(7n); // the program's write to its context comes back
    },
  },
  { prog: 'c_netfilter', type: ProgType.NETFILTER, setup: (p) => p.setType('netfilter', 'netfilter'), attachedBy: 'a netfilter link (not in the library)' },
];

describe.skipIf(!kernelTests())('compatibility suite', () => {
  const progsObj = ensureObject('testdata', 'compat_progs');
  const mapsObj = ensureObject('testdata', 'compat_maps');

  it('has a case for every program of its object, and one object program per type it names', () => {
    using obj = BpfObject.open(progsObj);
    expect(obj.programs.map((p) => p.name).sort()).toEqual(PROGS.map((c) => c.prog).sort());
  });

  describe('program types', () => {
    for (const c of PROGS) {
      const verb = c.exercise ? (c.needs ? 'loads and runs where the kernel can, else says why in one line' : 'loads and runs') : `loads (attached by ${c.attachedBy})`;
      it(`${c.prog}: ${verb}`, () => {
        using obj = BpfObject.open(progsObj);
        for (const p of obj.programs) p.setAutoload(p.name === c.prog);
        const prog = obj.program(c.prog);
        c.setup?.(prog);
        expect(prog.type).toBe(c.type);
        obj.setConst('target_tgid', process.pid);
        const has = c.needs ? c.needs.probe() : true;
        if (!has && !c.needs!.loadsAnyway) {
          throwsBpf(() => obj.load(), c.needs!.error);
          return;
        }
        obj.load();
        expect(prog.fd).toBeGreaterThan(0);
        const hits = obj.map('hits', u32, u64);
        if (!has) {
          throwsBpf(() => c.exercise!(prog, hits, obj), c.needs!.error);
          return;
        }
        c.exercise?.(prog, hits, obj);
      });
    }
  });

  describe('map types', () => {
    const obj = BpfObject.load(mapsObj);
    afterAll(() => obj.close());
    const EXPECTED: Record<string, string> = {
      m_hash: 'hash', m_array: 'array', m_percpu_hash: 'percpu_hash', m_percpu_array: 'percpu_array', m_lru_hash: 'lru_hash',
      m_lru_percpu_hash: 'lru_percpu_hash', m_devmap: 'devmap', m_devmap_hash: 'devmap_hash', m_cpumap: 'cpumap', m_xskmap: 'xskmap',
      m_sockmap: 'sockmap', m_sockhash: 'sockhash', m_reuseport: 'reuseport_sockarray', m_prog_array: 'prog_array',
      m_perf_event_array: 'perf_event_array', m_stack_trace: 'stack_trace', m_cgroup_array: 'cgroup_array', m_lpm_trie: 'lpm_trie',
      m_inner: 'array', m_array_of_maps: 'array_of_maps', m_hash_of_maps: 'hash_of_maps', m_queue: 'queue', m_stack: 'stack',
      m_bloom_filter: 'bloom_filter', m_ringbuf: 'ringbuf', m_user_ringbuf: 'user_ringbuf', m_sk_storage: 'sk_storage',
      m_inode_storage: 'inode_storage', m_task_storage: 'task_storage', m_cgrp_storage: 'cgrp_storage',
      m_cgroup_storage: 'cgroup_storage', m_percpu_cgroup_storage: 'percpu_cgroup_storage',
    };

    it('every map type is created, and the kernel reports the type the object declares', () => {
      const declared = Object.fromEntries(obj.maps.filter((m) => !m.name.includes('.')).map((m) => [m.name, m.typeName]));
      expect(declared).toEqual(EXPECTED);
      for (const name of Object.keys(EXPECTED)) expect(mapInfoByFd(obj.mapFd(name)).typeName, name).toBe(EXPECTED[name]);
    });

    it('hash, array, lru: set and get', () => {
      for (const name of ['m_hash', 'm_array', 'm_lru_hash']) {
        const m = obj.map(name, u32, u64);
        m.set(1, 11);
        expect(m.get(1), name).toBe(11);
      }
    });

    it('per-CPU hash, array, lru: one value per CPU', () => {
      for (const name of ['m_percpu_hash', 'm_percpu_array', 'm_lru_percpu_hash']) {
        const m = obj.perCpuMap(name, u32, u64);
        m.set(1, Array.from({ length: possibleCpus }, (_, i) => i + 1));
        expect(m.get(1), name).toEqual(Array.from({ length: possibleCpus }, (_, i) => i + 1));
      }
    });

    it('lpm_trie: the longest prefix matches', () => {
      const Key = struct('lpm_key', { prefixlen: 'u32', addr: 'u32' });
      const m = obj.map('m_lpm_trie', Key, u32);
      const addr = (a: number[]) => Buffer.from(a).readUInt32LE(); // network order in memory
      m.set({ prefixlen: 8, addr: addr([10, 0, 0, 0]) }, 8);
      m.set({ prefixlen: 24, addr: addr([10, 1, 2, 0]) }, 24);
      expect(m.get({ prefixlen: 32, addr: addr([10, 1, 2, 3]) })).toBe(24);
      expect(m.get({ prefixlen: 32, addr: addr([10, 9, 9, 9]) })).toBe(8);
      expect(m.get({ prefixlen: 32, addr: addr([11, 0, 0, 1]) })).toBeUndefined();
    });

    it('devmap, devmap_hash, cpumap: entries take an ifindex or a queue size', () => {
      const lo = ifNameToIndex('lo');
      for (const name of ['m_devmap', 'm_devmap_hash']) {
        const m = obj.map(name, u32, u32);
        m.set(0, lo);
        expect(m.get(0), name).toBe(lo);
      }
      const cpu = obj.map('m_cpumap', u32, u32);
      cpu.set(0, 192);
      expect(cpu.get(0)).toBe(192);
    });

    it('prog_array and map-in-map: set by fd, read back as ids', () => {
      const progs = obj.map('m_prog_array', u32, u32);
      const check = obj.program('check');
      progs.set(0, check.fd);
      expect(progs.get(0)).toBeGreaterThan(0);
      const inner = obj.map('m_inner', u32, u32);
      const innerId = inner.info().id;
      for (const name of ['m_array_of_maps', 'm_hash_of_maps']) {
        const outer = obj.map(name, u32, u32);
        outer.set(1, inner.fd);
        expect(outer.get(1), name).toBe(innerId);
      }
    });

    it('stack_trace: empty until a program records a stack', () => {
      expect(obj.map('m_stack_trace', u32, bytes(127 * 8)).get(0)).toBeUndefined();
    });

    it('cgroup_array: takes a cgroup directory fd', () => {
      const root = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[2] === 'cgroup2')![1];
      const fd = openSync(root, 'r');
      try {
        obj.map('m_cgroup_array', u32, u32).set(0, fd);
      } finally {
        closeSync(fd);
      }
    });

    it('queue, stack, bloom_filter, ringbuf: a program fills them, another reads them back', () => {
      const reader = new RingBufReader(obj.mapFd('m_ringbuf'), { codec: u32 });
      try {
        expect(obj.program('fill').testRun({ data: ipv4Frame() }).retval).toBe(XdpAction.PASS);
        const got: number[] = [];
        reader.read((v) => got.push(v));
        expect(got).toEqual([5]);
        // queue: FIFO gives 7, stack: LIFO gives 8; 42 is in the bloom filter, 13 is not
        expect(obj.program('check').testRun({ data: ipv4Frame() }).retval).toBe(7 * 1000 + 8 * 10 + 1);
      } finally {
        reader.close();
      }
    });
  });
});
