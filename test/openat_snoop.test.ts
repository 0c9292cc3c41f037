/**
 * openat_snoop (seed 004's CO-RE openat tracer; unit tests of decoding and
 * rendering in test/unit/openat_snoop.test.ts): kernel tests that run the loader and small C
 * programs compiled here, and check that their openat calls are reported
 * with their pid, command name and file name — also a name in a page the
 * process never touched before the call, which a read at sys_enter misses —
 * that --pid and --comm keep out everything else, and that SIGKILL leaves no
 * link. Tag: oat.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HEADER } from '../src/lessons/openat_snoop.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, loadedPrograms, runLoader, startLoader, stopAllLoaders } from './helpers/loader.js';

const tmp = mkdtempSync(join(tmpdir(), 'libbpf-ts-oat-'));
const children = new Set<ChildProcess>();

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await stopAllLoaders();
  rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------- kernel

/** Compiles a C program of the test into tmp. */
function cc(name: string, src: string, defs: string[] = []): string {
  const c = join(tmp, `${name}.c`);
  writeFileSync(c, src);
  const bin = join(tmp, name);
  execFileSync('gcc', ['-O2', '-Wall', ...defs, '-o', bin, c]);
  return bin;
}

/* The path sits 128 KiB into a 64 KiB-aligned read-only object: the page
 * holding it (and the kernel's fault-around window around it) is never
 * touched before openat, which only passes its address. */
const FRESH_C = `#include <fcntl.h>
#include <stdio.h>
static const struct { char before[1 << 17]; char path[4096]; char after[1 << 17]; }
	blob __attribute__((aligned(65536))) = { .path = PATH };
int main(void) { int fd = openat(AT_FDCWD, blob.path, O_RDONLY); printf("%d\\n", fd); return fd < 0; }
`;

/* Waits for a line on stdin, then opens each argument (openat), then exits. */
const OPENER_C = `#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
	char go[8];
	if (!fgets(go, sizeof(go), stdin)) return 1;
	for (int i = 1; i < argc; i++) { int fd = openat(AT_FDCWD, argv[i], O_RDONLY); if (fd >= 0) close(fd); }
	return 0;
}
`;

interface Json { pid: number; tid: number; comm: string; path: string | null; fd?: number; error?: string; name_error?: string }

function events(stdout: string): Json[] {
  return stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Json);
}

/** Starts an opener (a copy of the binary named `comm`) that opens `paths` once "go" is written to it. */
function opener(bin: string, comm: string, paths: string[]): { child: ChildProcess; go(): void; done: Promise<number | null> } {
  const copy = join(tmp, comm);
  copyFileSync(bin, copy);
  const child = spawn(copy, paths, { stdio: ['pipe', 'ignore', 'inherit'] });
  children.add(child);
  const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, go: () => { child.stdin!.end('go\n'); }, done };
}

function links(): Array<{ id: number; prog_id: number }> {
  const r = spawnSync('bpftool', ['-j', 'link', 'list'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`bpftool link list: ${r.stderr}`);
  return JSON.parse(r.stdout) as Array<{ id: number; prog_id: number }>;
}

describe.runIf(kernelTests())('openat_snoop loader (kernel)', () => {
  const uniq = `${process.pid}_${Date.now()}`;
  let openerBin = '';

  it('reports a file name in a page never touched before the call, with pid, comm and fd; a failed open with its errno', async () => {
    const target = join(tmp, `oat_fresh_target_${uniq}`);
    writeFileSync(target, 'x');
    const fresh = cc('oat_fresh', FRESH_C, [`-DPATH="${target}"`]);
    openerBin = cc('oat_opener', OPENER_C);
    const missing = join(tmp, `oat_missing_${uniq}`);
    const loader = startLoader('openat_snoop', ['--json']);
    await loader.waitFor('attached');
    expect(loader.stderr()).toContain('attached tracepoint openat_enter on syscalls:sys_enter_openat and tracepoint openat_exit on syscalls:sys_exit_openat, filter: none');
    const child = spawn(fresh, [], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    const o = opener(openerBin, 'oat_opener1', [missing]);
    o.go();
    await o.done;
    await loader.waitForStdout(missing, 10_000);
    await loader.waitForStdout(target, 10_000);
    const evs = events(loader.stdout());
    const mine = evs.filter((e) => e.path === target);
    expect(mine).toEqual([expect.objectContaining({ pid: child.pid, tid: child.pid, comm: 'oat_fresh', fd: Number(out.trim()) })]);
    expect(evs.filter((e) => e.path === missing)).toEqual([expect.objectContaining({ pid: o.child.pid, comm: 'oat_opener1', error: 'ENOENT' })]);
    // Nothing from these two processes went unread (a read at sys_enter gives "" for the fresh page).
    expect(evs.filter((e) => e.pid === child.pid && e.path === null)).toEqual([]);
    const exit = await loader.stop('SIGINT');
    expect(exit.code).toBe(0);
    expect(loader.stderr()).toMatch(/\d+ events, 0 unreadable names, 0 lost/);
  }, 60_000);

  it('--pid keeps out every other process (filtered in the kernel)', async () => {
    const a = opener(openerBin, 'oat_pid_a', [`/oat_pid_a_${uniq}`]);
    const b = opener(openerBin, 'oat_pid_b', [`/oat_pid_b_${uniq}`]);
    const loader = startLoader('openat_snoop', ['--json', '--pid', String(a.child.pid)]);
    await loader.waitFor('attached');
    expect(loader.stderr()).toContain(`filter: pid ${a.child.pid}`);
    b.go();
    await b.done;
    a.go();
    await a.done;
    await loader.waitForStdout(`/oat_pid_a_${uniq}`, 10_000);
    await loader.stop('SIGINT');
    const evs = events(loader.stdout());
    expect(evs.length).toBeGreaterThan(0);
    expect(evs.every((e) => e.pid === a.child.pid)).toBe(true);
    expect(evs.filter((e) => e.path === `/oat_pid_a_${uniq}`)).toEqual([expect.objectContaining({ comm: 'oat_pid_a', error: 'ENOENT' })]);
  }, 60_000);

  it('--comm keeps out every other command (filtered in the kernel); --count stops with the summary', async () => {
    const a = opener(openerBin, 'oat_comm_a', [`/oat_comm_a1_${uniq}`, `/oat_comm_a2_${uniq}`]);
    const b = opener(openerBin, 'oat_comm_b', [`/oat_comm_b_${uniq}`]);
    const loader = startLoader('openat_snoop', ['--comm', 'oat_comm_a', '--count', '2']);
    await loader.waitFor('attached');
    expect(loader.stderr()).toContain('filter: comm oat_comm_a');
    b.go();
    await b.done;
    a.go();
    await a.done;
    const exit = await loader.exited;
    expect(exit.code).toBe(0);
    const lines = loader.stdout().trim().split('\n');
    expect(lines[0]).toBe(HEADER);
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(new RegExp(`^\\d+\\.\\d{6} +${a.child.pid} +oat_comm_a +-1  ENOENT  /oat_comm_a1_${uniq}$`)),
      expect.stringMatching(new RegExp(`^\\d+\\.\\d{6} +${a.child.pid} +oat_comm_a +-1  ENOENT  /oat_comm_a2_${uniq}$`)),
    ]);
    expect(loader.stderr()).toMatch(/^2 events, 0 unreadable names, 0 lost;/m);
  }, 60_000);

  it('--verbose shows libbpf CO-RE relocation lines', async () => {
    const r = await runLoader('openat_snoop', ['--verbose', '--duration', '0.2', '--pid', '1']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/libbpf: CO-RE relocating \[\d+\] struct trace_event_raw_sys_enter: found target candidate/);
    expect(r.stderr).toMatch(/libbpf: CO-RE relocating \[\d+\] struct trace_event_raw_sys_exit: found target candidate/);
  }, 60_000);

  it('SIGKILL leaves no link', async () => {
    const before = new Set(links().map((l) => l.id));
    const loader = startLoader('openat_snoop', ['--pid', '1']);
    await loader.waitFor('attached');
    const ours = new Set(loadedPrograms().filter((p) => ['openat_enter', 'openat_exit'].includes(p.name ?? '')).map((p) => p.id));
    const added = links().filter((l) => !before.has(l.id) && ours.has(l.prog_id));
    expect(added.length).toBe(2);
    loader.kill('SIGKILL');
    await loader.exited;
    expect(await eventually(() => !links().some((l) => added.some((x) => x.id === l.id)), 5000)).toBe(true);
  }, 60_000);
});
