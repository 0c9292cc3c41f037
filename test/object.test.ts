/**
 * BpfObject and Program on a real kernel: open (file, memory, bad input),
 * programs and map definitions before load, load (and the verifier's
 * rejection with its log), setConst/setMaxEntries before load and their
 * effect, test runs of a program that writes maps and rewrites packets, and
 * close() (twice, and everything unusable after it).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BpfObject, BpfError, VerifierError, ProgType, XdpAction, BPF_F_TEST_XDP_LIVE_FRAMES, MapType, u32, u64, struct,
} from '../src/index.js';
import { ensureObject, REPO_ROOT } from '../src/cli/build.js';
import { kernelTests } from './helpers/kernel.js';
import { throwsBpf } from './helpers/expect.js';

const PV = struct('pcpu_val', { a: 'u32', b: 'u32', c: 'u32' });

/** An Ethernet + IPv4 + UDP frame (checksums left 0: XDP does not check them). */
function udpFrame(payloadLen = 18): Buffer {
  const f = Buffer.alloc(14 + 20 + 8 + payloadLen);
  Buffer.from([2, 0, 0, 0, 0, 1]).copy(f, 0); // destination MAC
  Buffer.from([2, 0, 0, 0, 0, 2]).copy(f, 6); // source MAC
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(20 + 8 + payloadLen, 16);
  f[22] = 64;
  f[23] = 17;
  Buffer.from([10, 0, 0, 1]).copy(f, 26);
  Buffer.from([10, 0, 0, 2]).copy(f, 30);
  f.writeUInt16BE(1234, 34);
  f.writeUInt16BE(53, 36);
  f.writeUInt16BE(8 + payloadLen, 38);
  f.fill(0x61, 42);
  return f;
}

describe.skipIf(!kernelTests())('BpfObject on a real kernel', () => {
  const mapsObj = ensureObject('testdata', 'maps');
  const brokenObj = ensureObject('testdata', 'broken');

  describe('open', () => {
    it('lists programs and map definitions before load', () => {
      using obj = BpfObject.open(mapsObj);
      expect(obj.name).toBe('maps');
      expect(obj.source).toBe(mapsObj);
      expect(obj.loaded).toBe(false);
      expect(obj.programs.map((p) => [p.name, p.section])).toEqual([['count_packets', 'xdp']]);
      expect(obj.program().name).toBe('count_packets');
      expect(obj.program('count_packets').type).toBe(ProgType.XDP);
      const defs = Object.fromEntries(obj.maps.map((m) => [m.name, m]));
      expect(defs.hash_u32).toEqual({ name: 'hash_u32', type: MapType.HASH, typeName: 'hash', keySize: 4, valueSize: 8, maxEntries: 64 });
      expect(defs.array_u32).toMatchObject({ type: MapType.ARRAY, maxEntries: 4 });
      expect(defs.percpu_counts).toMatchObject({ type: MapType.PERCPU_ARRAY, typeName: 'percpu_array', keySize: 4, valueSize: 8 });
      expect(defs.percpu_hash).toMatchObject({ type: MapType.PERCPU_HASH, valueSize: 12 });
      expect(defs.lru).toMatchObject({ type: MapType.LRU_HASH, typeName: 'lru_hash' });
      expect(defs.flows).toMatchObject({ keySize: 16, valueSize: 16, maxEntries: 1024 });
      expect(Object.keys(defs)).toContain('maps.rodata');
    });

    it('refuses a missing file with ENOENT', () => {
      const e = throwsBpf(() => BpfObject.open('/nonexistent.bpf.o'), 'open object /nonexistent.bpf.o: no such file (ENOENT)');
      expect(e.errno).toBe(2);
    });

    it('refuses a file that is not an ELF object with one line', () => {
      const p = `${REPO_ROOT}/package.json`;
      const e = throwsBpf(() => BpfObject.open(p), new RegExp(`^open object ${p}: [^\\n]+ \\([A-Z][A-Z0-9_]+\\)$`));
      expect(e.errno).toBeGreaterThan(0);
      throwsBpf(() => BpfObject.openBuffer(Buffer.from('garbage')), /^open object from memory: [^\n]+ \([A-Z][A-Z0-9_]+\)$/);
    });

    it('refuses a directory as a directory', () => {
      const d = `${REPO_ROOT}/bpf`;
      const e = throwsBpf(() => BpfObject.open(d), `open object ${d}: is a directory, not a BPF object file (a .bpf.o built by clang -target bpf) (EISDIR)`);
      expect(e.code).toBe('EISDIR');
      throwsBpf(() => BpfObject.open(`${REPO_ROOT}/package.json`), `open object ${REPO_ROOT}/package.json: not a BPF object file (an ELF .bpf.o built by clang -target bpf) (LIBBPF_ERRNO__FORMAT)`);
    });

    it('opens an object from memory', () => {
      using obj = BpfObject.openBuffer(readFileSync(mapsObj)).load();
      expect(obj.source).toBe('<memory>');
      expect(obj.program('count_packets').testRun({ data: udpFrame() }).retval).toBe(XdpAction.PASS);
    });

    it('names the programs and maps that exist when asked for one that does not', () => {
      using obj = BpfObject.open(mapsObj);
      throwsBpf(() => obj.program('nope'), 'find program nope in maps: no such program (have: count_packets) (ENOENT)');
      throwsBpf(() => obj.setMaxEntries('nope', 1), /^find map nope in maps: no such map \(have: .*hash_u32.*\) \(ENOENT\)$/);
    });

    it('has no program fd and no maps before load', () => {
      using obj = BpfObject.open(mapsObj);
      throwsBpf(() => obj.program().fd, /^get fd of program count_packets: program is not loaded \(E[A-Z]+\)$/);
      throwsBpf(() => obj.map('hash_u32', u32, u64), 'open map hash_u32: object is not loaded yet (EINVAL)');
      throwsBpf(() => obj.mapFd('hash_u32'), 'open map hash_u32: object is not loaded yet (EINVAL)');
    });
  });

  describe('load', () => {
    it('loads every program and map; a second load() is a no-op', () => {
      using obj = BpfObject.open(mapsObj);
      expect(obj.load()).toBe(obj);
      expect(obj.loaded).toBe(true);
      const fd = obj.program().fd;
      expect(fd).toBeGreaterThan(0);
      expect(obj.load()).toBe(obj);
      expect(obj.program().fd).toBe(fd);
      expect(obj.mapFd('hash_u32')).toBeGreaterThan(0);
      throwsBpf(() => obj.map('nope', u32, u64), /^find map nope in maps: no such map/);
    });

    it('says which codecs to pass when a map is opened with only one', () => {
      using obj = BpfObject.load(mapsObj);
      const untyped = obj as unknown as { map(name: string, ...codecs: unknown[]): unknown; perCpuMap(name: string, ...codecs: unknown[]): unknown };
      // With neither codec, the map's BTF types it (test/btf.test.ts); with one missing, it says what to pass.
      expect(obj.map('hash_u32').keyCodec.size).toBe(4);
      expect(() => untyped.map('flows', u32)).toThrow(new TypeError("open map flows: no value codec given: pass codecs for its 16-byte key and 16-byte value, e.g. map('flows', struct(...) of 16 bytes, struct(...) of 16 bytes)"));
      expect(() => untyped.perCpuMap('percpu_counts', {}, u64)).toThrow(/^open map percpu_counts: no key codec given: .* e\.g\. perCpuMap\('percpu_counts', u32, u64\)$/);
    });

    it('throws a VerifierError showing the last verifier lines, with the whole log attached', () => {
      let err: unknown;
      try { BpfObject.load(brokenObj); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(VerifierError);
      const e = err as VerifierError;
      expect(e.program).toBe('hello');
      expect(e.code).toBe('EACCES');
      const [first, ...shown] = e.message.split('\n');
      expect(first).toBe('load object broken.bpf.o: verifier rejected program hello:');
      expect(shown.length).toBeGreaterThan(0);
      expect(shown.length).toBeLessThanOrEqual(6);
      expect(shown.every((l) => l.startsWith('  '))).toBe(true);
      expect(e.message).toMatch(/invalid access to packet/);
      expect(e.message).toMatch(/ \(EACCES\)$/);
      // The whole log: the shown lines are its tail, before the statistics.
      const tail = shown.map((l) => l.slice(2)).join('\n').replace(/ \(EACCES\)$/, '');
      expect(e.log.join('\n')).toContain(tail);
      expect(e.log.length).toBeGreaterThan(shown.length);
      expect(e.log.some((l) => /^processed \d+ insns/.test(l))).toBe(true);
      expect(e.message).not.toMatch(/processed \d+ insns/);
    });

    it('blames the program that failed, not one that kept a log before it', () => {
      for (const logLevel of [0, 1, 2]) {
        let err: unknown;
        const obj = BpfObject.open(ensureObject('testdata', 'blame'), { logLevel });
        try { obj.load(); } catch (e) { err = e; }
        expect(err).toBeInstanceOf(VerifierError);
        const e = err as VerifierError;
        expect(e.program).toBe('rejected');
        expect(e.message.split('\n')[0]).toBe('load object blame.bpf.o: verifier rejected program rejected:');
        expect(e.message).toMatch(/invalid access to packet/);
        expect(e.truncated).toBe(false);
        // The program before it was loaded, and kept its own log when asked for one.
        if (logLevel > 0) expect(obj.verifierLog('first_ok')).toMatch(/processed \d+ insns/);
        obj.close();
      }
    });

    it('reports a map the kernel refuses to create as such, not as a verifier rejection', () => {
      let err: unknown;
      try { BpfObject.load(ensureObject('testdata', 'badmap'), { logLevel: 1 }); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(BpfError);
      expect(err).not.toBeInstanceOf(VerifierError);
      expect((err as Error).message).toBe('load object badmap.bpf.o: create map no_room: Invalid argument (EINVAL)');
    });

    it('says when a verifier log filled its buffer (ENOSPC), and does not call it a rejection', () => {
      for (const obj of [mapsObj, brokenObj]) {
        let err: unknown;
        try { BpfObject.load(obj, { logLevel: 2, logSize: 256 }); } catch (e) { err = e; }
        expect(err).toBeInstanceOf(BpfError);
        expect(err).not.toBeInstanceOf(VerifierError);
        const prog = obj === mapsObj ? 'count_packets' : 'hello';
        expect((err as Error).message).toBe(`load object ${basename(obj)}: load program ${prog}: its verifier log filled the 256-byte buffer, so the kernel refused the load: raise logSize or lower logLevel (ENOSPC)`);
      }
    });

    it('says that root (CAP_BPF) is needed when run without privileges, not the RLIMIT_MEMLOCK hint', () => {
      // A user namespace: no capabilities in the initial one.
      const r = spawnSync('unshare', ['--user', process.execPath, '--import', 'tsx', join(REPO_ROOT, 'test/helpers/unprivileged.ts'), mapsObj], {
        cwd: REPO_ROOT, encoding: 'utf8',
      });
      expect(r.stderr).toBe('');
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { what: string; name: string; message: string });
      const need = 'operation not permitted: BPF needs root (CAP_BPF, plus CAP_NET_ADMIN for XDP/tc or CAP_PERFMON for tracing; or CAP_SYS_ADMIN) (EPERM)';
      expect(lines).toEqual([
        { what: 'load', name: 'BpfError', message: `load object maps.bpf.o: ${need}` },
        { what: 'create', name: 'BpfError', message: `create map probe: ${need}` },
      ]);
    });

    it('keeps the verifier log of a loaded program when a log level is asked for', () => {
      using quiet = BpfObject.load(mapsObj);
      expect(quiet.verifierLog('count_packets')).toBe('');
      using verbose = BpfObject.load(mapsObj, { logLevel: 1 });
      expect(verbose.verifierLog('count_packets')).toMatch(/processed \d+ insns/);
    });
  });

  describe('setConst and setMaxEntries', () => {
    it('set const volatile globals before load, seen by the program', () => {
      using obj = BpfObject.open(mapsObj);
      obj.setConst('verdict', XdpAction.DROP).setConst('rewrite', 1).setConst('big_const', 2n ** 40n).load();
      const frame = udpFrame();
      const r = obj.program().testRun({ data: frame });
      expect(r.retval).toBe(XdpAction.DROP);
      // rewrite=1 swaps the MAC addresses.
      expect([...r.data.subarray(0, 6)]).toEqual([...frame.subarray(6, 12)]);
      expect([...r.data.subarray(6, 12)]).toEqual([...frame.subarray(0, 6)]);
      expect(Buffer.compare(r.data.subarray(12), frame.subarray(12))).toBe(0);
    });

    it('take raw bytes of the exact size', () => {
      using obj = BpfObject.open(mapsObj);
      obj.setConst('verdict', new Uint8Array(new Uint32Array([XdpAction.TX]).buffer)); // host order
      expect(() => obj.setConst('verdict', new Uint8Array(3))).toThrow(new RangeError('set verdict in maps: verdict is 4 bytes, got 3'));
      obj.load();
      expect(obj.program().testRun({ data: udpFrame() }).retval).toBe(XdpAction.TX);
    });

    it('refuse unknown names, and any change after load (EBUSY)', () => {
      using obj = BpfObject.open(mapsObj);
      throwsBpf(() => obj.setConst('nope', 1), 'set nope in maps: no such const volatile variable in .rodata (ENOENT)');
      obj.setMaxEntries('hash_u32', 4).load();
      throwsBpf(() => obj.setConst('verdict', 1), 'set verdict: object is already loaded (EBUSY)');
      throwsBpf(() => obj.setMaxEntries('hash_u32', 8), 'resize map hash_u32: object is already loaded (EBUSY)');
      expect(obj.map('hash_u32', u32, u64).maxEntries).toBe(4);
      expect(obj.map('hash_u32', u32, u64).info().maxEntries).toBe(4);
    });
  });

  describe('testRun', () => {
    it('returns the verdict, the output data and a kernel-measured duration', () => {
      using obj = BpfObject.load(mapsObj);
      const frame = udpFrame();
      const r = obj.program().testRun({ data: frame, repeat: 1000 });
      expect(r.retval).toBe(XdpAction.PASS);
      expect(Buffer.compare(r.data, frame)).toBe(0);
      expect(r.duration).toBeGreaterThan(0);
      expect(r.duration).toBeLessThan(1e6); // ns per run
      expect(r.ctx).toBeUndefined();
    });

    it('runs `repeat` times on one buffer: every run counts, rewrites accumulate', () => {
      using obj = BpfObject.open(mapsObj);
      obj.setConst('rewrite', 1).load();
      const counts = obj.perCpuMap('percpu_counts', u32, u64);
      const frame = udpFrame();
      const once = obj.program().testRun({ data: frame, repeat: 1 }).data;
      expect(Buffer.compare(once.subarray(0, 6), frame.subarray(6, 12))).toBe(0);
      const twice = obj.program().testRun({ data: frame, repeat: 2 }).data;
      expect(Buffer.compare(twice, frame)).toBe(0); // swapped twice
      obj.program().testRun({ data: frame, repeat: 7 });
      expect(counts.sum(0)).toBe(1 + 2 + 7);
    });

    it('truncates the output to dataOutSize and gives the output context when asked', () => {
      using obj = BpfObject.load(mapsObj);
      const frame = udpFrame(100);
      // Too small a data_out buffer: the kernel copies what fits and says ENOSPC.
      throwsBpf(() => obj.program().testRun({ data: frame, dataOutSize: 20 }), /^test run program count_packets: .* \(ENOSPC\)$/);
      const ctx = Buffer.alloc(24); // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
      ctx.writeUInt32LE(frame.length, 4);
      const r = obj.program().testRun({ data: frame, ctx, ctxOutSize: 24 });
      expect(r.ctx?.length).toBe(24);
      expect(r.ctx!.readUInt32LE(4)).toBe(frame.length); // data_end
    });

    it('rejects bad input with the errno in one line', () => {
      using obj = BpfObject.load(mapsObj);
      // XDP needs at least an Ethernet header.
      throwsBpf(() => obj.program().testRun({ data: Buffer.alloc(4) }), 'test run program count_packets: Invalid argument (EINVAL)');
      // batch_size is for live frames only.
      throwsBpf(() => obj.program().testRun({ data: udpFrame(), batchSize: 8 }), 'test run program count_packets: Invalid argument (EINVAL)');
    });

    it('runs live frames (dropped here, so nothing leaves the machine)', () => {
      using obj = BpfObject.open(mapsObj);
      obj.setConst('verdict', XdpAction.DROP).load();
      const counts = obj.perCpuMap('percpu_counts', u32, u64);
      obj.program().testRun({ data: udpFrame(), repeat: 25, flags: BPF_F_TEST_XDP_LIVE_FRAMES, batchSize: 4 });
      expect(counts.sum(0)).toBe(25);
    });
  });

  describe('close', () => {
    it('is idempotent and leaves every handle unusable', () => {
      const obj = BpfObject.load(mapsObj);
      const prog = obj.program();
      const m = obj.map('hash_u32', u32, u64);
      const pc = obj.perCpuMap('percpu_hash', u32, PV);
      m.set(1, 1);
      obj.close();
      obj.close();
      obj[Symbol.dispose]();
      throwsBpf(() => prog.fd, 'use program count_packets: its object is closed (EBADF)');
      throwsBpf(() => prog.testRun({ data: udpFrame() }), 'use program count_packets: its object is closed (EBADF)');
      throwsBpf(() => m.get(1), 'use map hash_u32: map is closed (EBADF)');
      throwsBpf(() => m.set(1, 2), 'use map hash_u32: map is closed (EBADF)');
      throwsBpf(() => [...m.keys()], 'use map hash_u32: map is closed (EBADF)');
      throwsBpf(() => pc.get(1), 'use map percpu_hash: map is closed (EBADF)');
      throwsBpf(() => obj.map('hash_u32', u32, u64), 'use object maps: object is closed (EBADF)');
      throwsBpf(() => obj.setConst('verdict', 1), /object is (closed|already loaded)/);
      m.close();
      m.close();
    });

    it('closes on scope exit with `using`', () => {
      let prog;
      {
        using obj = BpfObject.load(mapsObj);
        prog = obj.program();
        expect(prog.fd).toBeGreaterThan(0);
      }
      throwsBpf(() => prog.fd, /its object is closed \(EBADF\)$/);
    });
  });
});
