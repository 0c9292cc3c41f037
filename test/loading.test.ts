/**
 * Loading options and load errors on a real kernel: the pin root of maps
 * pinned by name (reuse by a second object, unpin), per-program autoload
 * and type before load, .data/.bss/.rodata values set before load and
 * seen by the program, libbpf's own cause in load errors (pinned map of
 * another shape, unknown section name, pin root off bpffs), and the
 * wrong-hook check of the attach calls.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { BpfObject, ProgType, XdpAction, u32, u64 } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { kernelTests, removePins } from './helpers/kernel.js';
import { throwsBpf } from './helpers/expect.js';

describe.skipIf(!kernelTests())('loading options and load errors', () => {
  const pinnedObj = ensureObject('testdata', 'pinned');
  const oldsecObj = ensureObject('testdata', 'oldsec');
  const tracingObj = ensureObject('testdata', 'tracing');
  const pinRoot = `/sys/fs/bpf/libbpf-ts/lo-${process.pid}`;
  const notBpffs = mkdtempSync(`${tmpdir()}/lo-pins-`);

  afterAll(() => {
    removePins(pinRoot);
    rmSync(notBpffs, { recursive: true, force: true });
  });

  describe('pin root', () => {
    it('pins maps by name under pinRoot, a second object reuses them, unpinMaps removes them (twice is safe)', () => {
      mkdirSync(pinRoot, { recursive: true });
      using a = BpfObject.open(pinnedObj, { pinRoot });
      try {
      expect(a.pinnedMaps).toEqual([{ name: 'lbts_pinned', path: `${pinRoot}/lbts_pinned`, pinned: false }]);
      a.load();
      expect(a.pinnedMaps[0].pinned).toBe(true);
      expect(existsSync(`${pinRoot}/lbts_pinned`)).toBe(true);
      a.program().testRun({ data: Buffer.alloc(64), repeat: 3 });
      using b = BpfObject.load(pinnedObj, { pinRoot });
      expect(b.map('lbts_pinned', u32, u64).get(0)).toBe(3); // the same map: a's runs are counted in it
      b.program().testRun({ data: Buffer.alloc(64) });
      expect(a.map('lbts_pinned', u32, u64).get(0)).toBe(4);
      expect(a.unpinMaps()).toEqual([`${pinRoot}/lbts_pinned`]);
      expect(existsSync(`${pinRoot}/lbts_pinned`)).toBe(false);
      expect(a.unpinMaps()).toEqual([]);
      expect(b.unpinMaps()).toEqual([]); // b's pin was the same file: already gone
      } finally {
        a.unpinMaps();
      }
    });
  });

  describe('load errors carry libbpf\'s cause', () => {
    it('a pinned map of another shape: "couldn\'t reuse pinned map: parameter mismatch"', () => {
      mkdirSync(pinRoot, { recursive: true });
      const path = `${pinRoot}/lbts_pinned`;
      execFileSync('bpftool', ['map', 'create', path, 'type', 'hash', 'key', '4', 'value', '4', 'entries', '16', 'name', 'lbts_pinned']);
      try {
        using obj = BpfObject.open(pinnedObj, { pinRoot });
        throwsBpf(() => obj.load(), `load object pinned.bpf.o: create map lbts_pinned: couldn't reuse pinned map at '${path}': parameter mismatch (a map of another shape is pinned there: remove the pin, or use another pinRoot) (EINVAL)`);
      } finally {
        rmSync(path, { force: true });
      }
    });

    it('an old-style section name: "missing BPF prog type, check ELF section name"', () => {
      using obj = BpfObject.open(oldsecObj);
      obj.program('refused').setAutoload(false);
      throwsBpf(() => obj.load(), "load object oldsec.bpf.o: load program old_style: missing BPF prog type, check ELF section name 'xdp_prog': set it with program.setType() before load, or setAutoload(false) (EINVAL)");
    });

    it('a pin root off bpffs: "is not on BPF FS"', () => {
      using obj = BpfObject.open(pinnedObj, { pinRoot: notBpffs });
      throwsBpf(() => obj.load(), `load object pinned.bpf.o: create map lbts_pinned: specified path ${notBpffs}/lbts_pinned is not on BPF FS (pin maps on a bpffs: a pinRoot under /sys/fs/bpf, or mount -t bpf bpf <dir>) (EINVAL)`);
      expect(existsSync(`${notBpffs}/lbts_pinned`)).toBe(false);
    });
  });

  describe('programs before load', () => {
    it('setType makes an old-style section loadable; setAutoload(false) leaves out the one the kernel refuses', () => {
      using obj = BpfObject.open(oldsecObj);
      expect(obj.program('old_style').type).toBe(ProgType.UNSPEC);
      obj.program('old_style').setType('xdp');
      obj.program('refused').setAutoload(false);
      expect(obj.program('old_style').typeName).toBe('xdp');
      expect(obj.program('refused').autoload).toBe(false);
      obj.setConst('enabled', true).load();
      expect(obj.program('good').testRun({ data: Buffer.alloc(64) }).retval).toBe(XdpAction.PASS);
      throwsBpf(() => obj.program('refused').fd, 'get fd of program refused: program is not loaded (its autoload is off) (ENOENT)');
      throwsBpf(() => obj.program('good').setType('sched_cls'), 'set type of program good to sched_cls: object is already loaded (EBUSY)');
      throwsBpf(() => obj.program('good').setAutoload(false), 'set autoload of program good: object is already loaded (EBUSY)');
    });

    it('unknown type names are refused in one line', () => {
      using obj = BpfObject.open(oldsecObj);
      expect(() => obj.program('old_style').setType('xpd' as never)).toThrow(/^unknown program type xpd \(known: unspec, socket_filter, /);
    });
  });

  describe('globals before load', () => {
    it('.rodata (one array element, a string, a bool), .data and .bss values are what the program sees', () => {
      using obj = BpfObject.open(oldsecObj);
      obj.program('old_style').setType(ProgType.XDP);
      obj.program('refused').setAutoload(false);
      obj.setConst('ports[3]', 8080).setConst('small', -3).setConst('label', 'eth0').setConst('enabled', true);
      obj.setGlobal('data_verdict', XdpAction.DROP).setGlobal('bss_count', 10n);
      obj.load();
      const r = obj.program('old_style').testRun({ data: Buffer.alloc(64) });
      expect(r.retval).toBe(XdpAction.DROP);
      const bss = obj.maps.find((m) => m.name.endsWith('.bss'))!.name;
      // bss_count += ports[3] + small + enabled + label[0]
      expect(obj.map(bss, u32, u64).get(0)).toBe(10 + 8080 - 3 + 1 + 'e'.charCodeAt(0));
    });

    it('values that do not fit are refused in one line, and nothing is written', () => {
      using obj = BpfObject.open(oldsecObj);
      expect(() => obj.setConst('enabled', 256)).toThrow(new RangeError('set enabled in oldsec: 256 does not fit a bool (0..1)'));
      expect(() => obj.setConst('ports[1]', 1.5)).toThrow(new RangeError('set ports[1] in oldsec: 1.5 is not an integer: u16 holds integers'));
      expect(() => obj.setConst('ports[0]', -1)).toThrow(new RangeError('set ports[0] in oldsec: -1 does not fit a u16 (0..65535)'));
      expect(() => obj.setConst('ports[4]', 1)).toThrow(new RangeError('set ports[4] in oldsec: index 4 is out of range (u16[4]: 0..3)'));
      expect(() => obj.setConst('label', 'a-too-long-label')).toThrow(new RangeError('set label in oldsec: "a-too-long-label" is 16 bytes: label is s8[8], room for 7 and the NUL'));
      throwsBpf(() => obj.setConst('data_verdict', 1), 'set data_verdict in oldsec: no such const volatile variable in .rodata (data_verdict is in .data: use setGlobal) (ENOENT)');
      throwsBpf(() => obj.setGlobal('ports', [1]), 'set ports in oldsec: no such global variable in .data or .bss (ports is in .rodata: use setConst) (ENOENT)');
      obj.program('old_style').setType('xdp');
      obj.program('refused').setAutoload(false);
      obj.setConst('ports', [0, 0, 0, 0]).load();
      const bss = obj.maps.find((m) => m.name.endsWith('.bss'))!.name;
      obj.program('old_style').testRun({ data: Buffer.alloc(64) });
      // nothing of the refused values was written: ports zeroed, small -1, enabled 0, label "none"
      expect(obj.map(bss, u32, u64).get(0)).toBe(-1 + 'n'.charCodeAt(0));
    });
  });

  describe('attaching to the wrong hook', () => {
    it('says what the program is and what it attaches to, instead of EINVAL', () => {
      using obj = BpfObject.open(tracingObj);
      for (const p of obj.programs) p.setAutoload(p.name === 'auto_getppid');
      obj.load();
      throwsBpf(() => obj.program('auto_getppid').attachXdp('lo'),
        'attach program auto_getppid to xdp on lo: auto_getppid is a tracepoint program (section tp/syscalls/sys_enter_getppid), not xdp: it attaches to a tracepoint (attachTracepoint) (EINVAL)');
      throwsBpf(() => obj.program('auto_getppid').attachTc('lo', 'ingress'), /^attach program auto_getppid to tc ingress on lo: auto_getppid is a tracepoint program .*, not sched_cls: it attaches to a tracepoint \(attachTracepoint\) \(EINVAL\)$/);
      throwsBpf(() => obj.program('auto_getppid').attachKprobe('tcp_connect'), /, not kprobe: it attaches to a tracepoint/);
    });
  });
});
