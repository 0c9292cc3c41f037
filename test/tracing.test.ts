/**
 * The tracing attach API (src/attach/tracing.ts) on the CO-RE fixture
 * bpf/testdata/tracing.bpf.c: tracepoint, raw tracepoint, auto-attach and
 * uprobe/uretprobe counts (exact), kprobe and fentry where the kernel has
 * them and their one-line errors where it doesn't, detach twice, a
 * no-interface loader (runLesson iface: false) killed with SIGKILL leaving
 * no link; and the Makefile's vmlinux.h handling. Tag: trc.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject } from '../src/object.js';
import { u32, u64 } from '../src/codec.js';
import { parentPid } from '../src/ffi/sys.js';
import { BpfError } from '../src/errors.js';
import { kernelHasFunction, probeBtf, probeFentry, probeKprobes } from '../src/features.js';
import { BPF_DIR, REPO_ROOT, ensureObject } from '../src/cli/build.js';
import { lessonCommand } from '../src/cli/lesson.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, loadedPrograms, startLoader, stopAllLoaders } from './helpers/loader.js';

const GETPPID_NR = process.arch === 'arm64' ? 173 : 110;
const tmp = mkdtempSync(join(tmpdir(), 'libbpf-ts-trc-'));
const binary = join(tmp, 'trc_add');

afterAll(async () => {
  await stopAllLoaders();
  rmSync(tmp, { recursive: true, force: true });
});

/** A C compiler for the userspace test binary. */
function cc(): string {
  for (const c of ['cc', 'gcc', 'clang']) if (spawnSync('sh', ['-c', `command -v ${c}`]).status === 0) return c;
  throw new Error('no C compiler (cc, gcc or clang) to build the uprobe test binary');
}

/** Opens and loads the fixture, counting for this process. */
function openFixture(): BpfObject {
  const obj = BpfObject.open(ensureObject('testdata', 'tracing'));
  obj.setConst('target_tgid', process.pid);
  obj.setConst('getppid_nr', GETPPID_NR);
  return obj.load();
}

function errorOf(fn: () => unknown): BpfError {
  try { fn(); } catch (e) { if (e instanceof BpfError) return e; throw e; }
  throw new Error('expected a BpfError');
}

/** The file offset of a function of an ELF binary: its address minus its LOAD segment's address plus the segment's offset. */
function fileOffsetOf(path: string, func: string): number {
  const syms = execFileSync('readelf', ['-sW', path], { encoding: 'utf8' });
  const m = new RegExp(`^\\s*\\d+:\\s+([0-9a-f]+)\\s+\\d+\\s+FUNC\\s+\\S+\\s+\\S+\\s+\\S+\\s+${func}$`, 'm').exec(syms);
  if (!m) throw new Error(`no symbol ${func} in ${path}`);
  const addr = parseInt(m[1], 16);
  for (const l of execFileSync('readelf', ['-lW', path], { encoding: 'utf8' }).split('\n')) {
    const s = /^\s*LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(.*)$/.exec(l);
    if (!s || !/\bE\b/.test(s[5])) continue;
    const [offset, vaddr, filesz] = [parseInt(s[1], 16), parseInt(s[2], 16), parseInt(s[3], 16)];
    if (addr >= vaddr && addr < vaddr + filesz) return addr - vaddr + offset;
  }
  throw new Error(`${func} is in no executable LOAD segment of ${path}`);
}

function linkProgIds(): Array<{ id: number; prog_id: number }> {
  const r = spawnSync('bpftool', ['-j', 'link', 'list'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`bpftool link list: ${r.stderr}`);
  return JSON.parse(r.stdout) as Array<{ id: number; prog_id: number }>;
}

describe('bpf/Makefile: vmlinux.h for CO-RE programs only', () => {
  const copy = join(tmp, 'bpf');
  beforeAll(() => {
    cpSync(BPF_DIR, copy, { recursive: true, filter: (s) => !s.startsWith(join(BPF_DIR, 'build')) });
    execFileSync('make', ['-s', '-C', copy, 'build/tracing.bpf.o', 'build/pass.bpf.o'], { stdio: 'pipe' });
  }, 120_000);

  it('makes build/vmlinux.h from the running kernel, stamped with its release, and compiles CO-RE sources with the arch and -I build', () => {
    expect(readFileSync(join(copy, 'build', 'vmlinux.h'), 'utf8')).toContain('struct task_struct {');
    expect(existsSync(join(copy, 'build', `.vmlinux-${release()}`))).toBe(true);
    const dry = execFileSync('make', ['-n', '-B', '-C', copy, 'build/tracing.bpf.o', 'build/pass.bpf.o'], { encoding: 'utf8' });
    const lines = dry.split('\n');
    const core = lines.find((l) => l.includes('tracing.bpf.c'))!;
    const plain = lines.find((l) => l.includes('pass.bpf.c'))!;
    expect(core).toContain(`-D__TARGET_ARCH_${process.arch === 'arm64' ? 'arm64' : 'x86'}`);
    expect(core).toContain('-I build');
    expect(plain).not.toContain('__TARGET_ARCH');
    expect(plain).not.toContain('-I build');
  });

  it('ensureObject rebuilds a CO-RE object whose vmlinux.h came from another kernel', async () => {
    const obj = join(copy, 'build', 'tracing.bpf.o');
    const stamp = join(copy, 'build', `.vmlinux-${release()}`);
    const t0 = statSync(obj).mtimeMs;
    expect(ensureObject('testdata', 'tracing', { bpfDir: copy })).toBe(obj);
    expect(statSync(obj).mtimeMs).toBe(t0);
    rmSync(stamp);
    await new Promise((r) => setTimeout(r, 20));
    ensureObject('testdata', 'tracing', { bpfDir: copy });
    expect(existsSync(stamp)).toBe(true);
    expect(statSync(obj).mtimeMs).toBeGreaterThan(t0);
  }, 60_000);

  it('is up to date on the same kernel, and regenerates vmlinux.h and rebuilds only CO-RE objects for another', () => {
    expect(execFileSync('make', ['-n', '-C', copy, 'build/tracing.bpf.o', 'build/pass.bpf.o'], { encoding: 'utf8' })).not.toMatch(/bpftool|clang/);
    const other = execFileSync('make', ['-n', '-C', copy, 'KERNEL=trc-other', 'build/tracing.bpf.o', 'build/pass.bpf.o'], { encoding: 'utf8' });
    expect(other).toContain('bpftool btf dump file /sys/kernel/btf/vmlinux format c');
    expect(other).toContain('tracing.bpf.c');
    expect(other).not.toContain('pass.bpf.c');
  });
});

describe('lessonCommand with iface: false', () => {
  it('takes no interface argument nor --mode/--force', () => {
    const cmd = lessonCommand({ lesson: 'trc', description: 'd', iface: false, run: async () => {} })
      .configureOutput({ writeErr: () => {}, writeOut: () => {} });
    cmd.parse(['node', 'x', '--verbose'], { from: 'node' });
    expect(cmd.args).toEqual([]);
    expect(cmd.opts().verbose).toBe(true);
    expect(() => cmd.parse(['node', 'x', '--mode', 'skb'], { from: 'node' })).toThrow();
    expect(() => lessonCommand({ lesson: 'trc', description: 'd', iface: false, run: async () => {} })
      .configureOutput({ writeErr: () => {}, writeOut: () => {} }).parse(['node', 'x', 'eth0'], { from: 'node' })).toThrow();
  });
});

describe.skipIf(!kernelTests())('tracing attach (kernel)', () => {
  beforeAll(() => {
    writeFileSync(join(tmp, 'trc_add.c'), [
      '#include <stdio.h>',
      '#include <stdlib.h>',
      '__attribute__((noinline)) int traced_add(int a, int b) { __asm__ volatile(""); return a + b; }',
      'int main(int argc, char **argv) { int n = argc > 1 ? atoi(argv[1]) : 1, s = 0;',
      '  for (int i = 1; i <= n; i++) s += traced_add(i * 10, 1);',
      '  printf("%d\\n", s); return 0; }',
    ].join('\n'));
    execFileSync(cc(), ['-O1', '-o', binary, join(tmp, 'trc_add.c')]);
  }, 60_000);

  it('the probes answer: BTF here, kallsyms lookups', () => {
    expect(probeBtf()).toBe(true);
    expect(kernelHasFunction('tcp_connect')).toBe(true);
    expect(kernelHasFunction('trc_no_such_function')).toBe(false);
  });

  it('a tracepoint counts exactly the getppid calls of this process, reads the task with CO-RE, stops at detach, and detaches twice safely', () => {
    const obj = openFixture();
    try {
      const counts = obj.map('counts', u32, u64);
      const link = obj.program('on_getppid').attachTracepoint('syscalls', 'sys_enter_getppid');
      expect(link.description).toBe('tracepoint on_getppid on syscalls:sys_enter_getppid');
      const info = link.info();
      expect(info.type).toBe('perf_event');
      expect(loadedPrograms().find((p) => p.id === info.progId)?.name).toBe('on_getppid');
      expect(linkProgIds().some((l) => l.id === info.id && l.prog_id === info.progId)).toBe(true);
      for (let i = 0; i < 7; i++) parentPid();
      expect(counts.get(0)).toBe(7);
      expect(counts.get(7)).toBe(7); // BPF_CORE_READ(task, tgid) matched
      link.detach();
      expect(link.attached).toBe(false);
      link.detach();
      expect(errorOf(() => link.info()).code).toBe('EBADF');
      expect(linkProgIds().some((l) => l.id === info.id)).toBe(false);
      parentPid();
      expect(counts.get(0)).toBe(7);
    } finally {
      obj.close();
    }
  });

  it('a raw tracepoint and an auto-attached tp/ section count exactly', () => {
    const obj = openFixture();
    try {
      const counts = obj.map('counts', u32, u64);
      const raw = obj.program('on_sys_enter').attachRawTracepoint('sys_enter');
      const auto = obj.program('auto_getppid').attach();
      expect(raw.description).toBe('raw_tracepoint on_sys_enter on sys_enter');
      expect(auto.description).toBe('tp/syscalls/sys_enter_getppid auto_getppid');
      expect(raw.info().type).toBe('raw_tracepoint');
      for (let i = 0; i < 5; i++) parentPid();
      expect(counts.get(1)).toBe(5);
      expect(counts.get(5)).toBe(5);
      raw.detach(); auto.detach(); raw.detach(); auto.detach();
    } finally {
      obj.close();
    }
  });

  it('tracepoint errors say which is missing, in one line', () => {
    const obj = openFixture();
    try {
      const p = obj.program('on_getppid');
      expect(errorOf(() => p.attachTracepoint('syscalls', 'trc_nope')).message)
        .toMatch(/^attach tracepoint syscalls:trc_nope: the kernel has no tracepoint syscalls:trc_nope \(see \/sys\/kernel\/(debug\/)?tracing\/events\/syscalls\/\) \(ENOENT\)$/);
      expect(errorOf(() => p.attachTracepoint('trc_cat', 'x')).message).toMatch(/^attach tracepoint trc_cat:x: the kernel has no tracepoint category trc_cat .*\(ENOENT\)$/);
      expect(errorOf(() => obj.program('on_sys_enter').attachRawTracepoint('trc_nope')).message).toBe('attach raw_tracepoint trc_nope: the kernel has no tracepoint trc_nope (ENOENT)');
      expect(errorOf(() => obj.program('on_kprobe').attach()).message).toBe('attach kprobe on_kprobe: libbpf cannot attach section kprobe by itself: attach it with the attach call of its kind (EOPNOTSUPP)');
    } finally {
      obj.close();
    }
  });

  it('a uprobe counts the calls of a function of a test binary and reads its argument; a uretprobe reads the return value', () => {
    const obj = openFixture();
    try {
      const counts = obj.map('counts', u32, u64);
      const up = obj.program('on_traced_add').attachUprobe(binary, { func: 'traced_add' });
      const ret = obj.program('on_traced_add_ret').attachUprobe(binary, { func: 'traced_add', retprobe: true });
      expect(up.description).toBe(`uprobe on_traced_add on ${binary}:traced_add (every process)`);
      expect(ret.description).toBe(`uretprobe on_traced_add_ret on ${binary}:traced_add (every process)`);
      expect(execFileSync(binary, ['4'], { encoding: 'utf8' }).trim()).toBe('104');
      expect(counts.get(2)).toBe(4);
      expect(counts.get(3)).toBe(10 + 20 + 30 + 40);
      expect(counts.get(6)).toBe(104);
      up.detach(); ret.detach(); up.detach();
      execFileSync(binary, ['2']);
      expect(counts.get(2)).toBe(4);
      // pid: only that process (this one never runs the binary)
      const mine = obj.program('on_traced_add').attachUprobe(binary, { func: 'traced_add', pid: process.pid });
      expect(mine.description).toBe(`uprobe on_traced_add on ${binary}:traced_add (pid ${process.pid})`);
      execFileSync(binary, ['3']);
      expect(counts.get(2)).toBe(4);
      mine.detach();
      // by file offset alone: the symbol's address turned into its offset in the file (readelf)
      const off = fileOffsetOf(binary, 'traced_add');
      const byOffset = obj.program('on_traced_add').attachUprobe(binary, { offset: off });
      expect(byOffset.description).toBe(`uprobe on_traced_add on ${binary}:0x${off.toString(16)} (every process)`);
      execFileSync(binary, ['2']);
      expect(counts.get(2)).toBe(6);
      expect(counts.get(3)).toBe(100 + 10 + 20);
      byOffset.detach();
    } finally {
      obj.close();
    }
  });

  it('uprobe errors: no such function, no such file, neither func nor offset, no such process', () => {
    const obj = openFixture();
    try {
      const p = obj.program('on_traced_add');
      expect(errorOf(() => p.attachUprobe(binary, { func: 'trc_nope' })).message)
        .toBe(`attach uprobe ${binary}:trc_nope: no function trc_nope in ${binary} (not in its symbol tables) (ENOENT)`);
      expect(errorOf(() => p.attachUprobe(join(tmp, 'missing'), { func: 'main' })).message)
        .toBe(`attach uprobe ${join(tmp, 'missing')}:main: no such file ${join(tmp, 'missing')} (ENOENT)`);
      expect(errorOf(() => p.attachUprobe(binary, {})).code).toBe('EINVAL');
      const noPid = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')); // pids are below pid_max
      expect(errorOf(() => p.attachUprobe(binary, { func: 'traced_add', pid: noPid })).message)
        .toBe(`attach uprobe ${binary}:traced_add: no process ${noPid} (ESRCH)`);
    } finally {
      obj.close();
    }
  });

  it('kprobes: attach and count where the kernel has them; else one line saying it has none', () => {
    // Where the kernel config is readable, the probe must agree with it.
    const config = existsSync('/proc/config.gz') ? gunzipSync(readFileSync('/proc/config.gz')).toString()
      : existsSync(`/boot/config-${release()}`) ? readFileSync(`/boot/config-${release()}`, 'utf8') : '';
    if (/^CONFIG_KPROBES=y$/m.test(config)) expect(probeKprobes()).toBe(true);
    if (/^# CONFIG_KPROBES is not set$/m.test(config)) expect(probeKprobes()).toBe(false);
    const obj = openFixture();
    try {
      const p = obj.program('on_kprobe');
      if (!probeKprobes()) {
        expect(errorOf(() => p.attachKprobe('tcp_connect')).message).toBe('attach kprobe tcp_connect: this kernel has no kprobes (CONFIG_KPROBES off) (ENOENT)');
        expect(errorOf(() => p.attachKprobe('tcp_connect', { retprobe: true })).message).toBe('attach kretprobe tcp_connect: this kernel has no kprobes (CONFIG_KPROBES off) (ENOENT)');
        expect(errorOf(() => obj.program('auto_kprobe').attach()).message).toBe('attach kprobe/tcp_connect auto_kprobe: this kernel has no kprobes (CONFIG_KPROBES off) (ENOENT)');
        return;
      }
      const counts = obj.map('counts', u32, u64);
      const link = p.attachKprobe('__task_pid_nr_ns');
      expect(link.description).toBe('kprobe on_kprobe on __task_pid_nr_ns');
      for (let i = 0; i < 6; i++) parentPid();
      expect(counts.get(4)).toBeGreaterThanOrEqual(6);
      link.detach(); link.detach();
      const auto = obj.program('auto_kprobe').attach();
      expect(auto.description).toBe('kprobe/tcp_connect auto_kprobe');
      auto.detach();
      const ret = p.attachKprobe('__task_pid_nr_ns', { retprobe: true });
      expect(ret.description).toBe('kretprobe on_kprobe on __task_pid_nr_ns');
      ret.detach();
      expect(errorOf(() => p.attachKprobe('trc_no_such_function')).message).toMatch(/^attach kprobe trc_no_such_function: the kernel has no function trc_no_such_function to probe .*\((ENOENT|EINVAL)\)$/);
    } finally {
      obj.close();
    }
  });

  it('fentry: attach and count where the kernel allows it; else the load says the kernel refuses fentry/fexit', () => {
    const obj = BpfObject.open(ensureObject('testdata', 'tracing_fentry'));
    try {
      obj.setConst('target_tgid', process.pid);
      if (!probeFentry()) {
        const e = errorOf(() => obj.load());
        expect(e.message).toMatch(/^load object tracing_fentry\.bpf\.o: load program on_getppid_fentry: the kernel refuses fentry\/fexit programs .*\(EPERM\)$/);
        return;
      }
      obj.load();
      const link = obj.program('on_getppid_fentry').attachTracing();
      expect(link.description).toBe('fentry on_getppid_fentry on __do_sys_getppid');
      for (let i = 0; i < 4; i++) parentPid();
      const [bss] = obj.maps.filter((m) => m.name.endsWith('.bss'));
      expect(obj.map(bss.name, u32, u64).get(0)).toBe(4);
      link.detach(); link.detach();
    } finally {
      obj.close();
    }
  });

  it('a no-interface loader (runLesson iface: false) attaches in its hook, counts, and SIGKILL leaves no link', async () => {
    ensureObject('testdata', 'tracing');
    const before = new Set(linkProgIds().map((l) => l.id));
    const loader = startLoader('tracing', ['--object', join(BPF_DIR, 'build', 'tracing.bpf.o'), '--binary', binary, '--calls', '3'],
      { script: join(REPO_ROOT, 'test', 'helpers', 'tracing-loader.ts') });
    await loader.waitFor('counted');
    expect(loader.stderr()).toContain('attached tracepoint on_getppid on syscalls:sys_enter_getppid');
    expect(loader.stderr()).toContain(`attached uprobe on_traced_add on ${binary}:traced_add (every process)`);
    await loader.waitForStdout('}'); // stdout is buffered (Output): it may come after the stderr line
    expect(JSON.parse(loader.stdout().trim())).toEqual({ tracepoint: 3, raw: 3 });
    const ours = new Set(loadedPrograms().filter((p) => ['on_getppid', 'on_sys_enter', 'on_traced_add'].includes(p.name ?? '')).map((p) => p.id));
    const links = linkProgIds().filter((l) => !before.has(l.id) && ours.has(l.prog_id));
    expect(links.length).toBe(3);
    loader.kill('SIGKILL');
    await loader.exited;
    expect(await eventually(() => !linkProgIds().some((l) => links.some((x) => x.id === l.id)), 5000)).toBe(true);
  }, 60_000);
});
