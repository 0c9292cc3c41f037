/**
 * openat_snoop figures, side by side in one run:
 *  1. The cost each openat pays while the tracer is attached: a C process
 *     (bench/c/openat_loop.c, pinned to CPU 1) times openat+close of one
 *     file with nothing attached, with the openat_snoop loader running (as
 *     a user runs it: its text output to /dev/null), and with bpftrace
 *     running the same enter/exit pair (pointer kept at entry, name read and
 *     printed at exit, output to /dev/null). Goal: ours adds no more than
 *     bpftrace's.
 *  2. Events per second delivered to the TS reader with none lost while the
 *     C process opens flat out on the other core (loader filtered to its
 *     comm, so the figure is the C process's own events).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT, ensureObject } from '../src/cli/build.js';
import { buildC, type BenchModule, type BenchRow } from './lib.js';

const GROUP = 'openat_snoop';

/** The bpftrace program equivalent to the lesson: the pointer at entry, the name and result printed at exit. */
export const BPFTRACE_PROGRAM = 'tracepoint:syscalls:sys_enter_openat { @fn[tid] = args->filename; } '
  + 'tracepoint:syscalls:sys_exit_openat /@fn[tid]/ { printf("%d %d %s %d %s\\n", pid, tid, comm, args->ret, str(@fn[tid])); delete(@fn[tid]); }';

interface Running { child: ChildProcess; stderr(): string; exited: Promise<void> }

/** Starts a tracer with stdout to /dev/null; resolves once stderr (or stdout, for bpftrace) shows `ready`. */
async function startTracer(cmd: string[], ready: RegExp, readyOnStdout = false): Promise<Running> {
  const devnull = openSync('/dev/null', 'w');
  const child = spawn(cmd[0], cmd.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', readyOnStdout ? 'pipe' : devnull, 'pipe'] });
  closeSync(devnull);
  let err = '';
  let out = '';
  child.stderr!.on('data', (d) => { err += String(d); });
  // bpftrace prints "Attaching 2 probes..." on stdout, then its events: keep only the start.
  child.stdout?.on('data', (d) => { if (out.length < 4096) out += String(d); });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  let gone = false;
  void exited.then(() => { gone = true; });
  const t0 = Date.now();
  while (!ready.test(readyOnStdout ? out : err)) {
    if (gone) throw new Error(`${cmd[0]} exited before it was ready: ${err.trim()}`);
    if (Date.now() - t0 > 60_000) { child.kill('SIGKILL'); throw new Error(`${cmd[0]} not ready after 60 s: ${err.trim()}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  // bpftrace says "Attaching" just before it attaches: give it a moment.
  await new Promise((r) => setTimeout(r, 500));
  return { child, stderr: () => err, exited };
}

async function stop(r: Running): Promise<void> {
  r.child.kill('SIGINT');
  const t = setTimeout(() => r.child.kill('SIGKILL'), 10_000);
  await r.exited;
  clearTimeout(t);
}

/** Runs the C load on CPU 1 (asynchronously: the tracer's reader keeps running meanwhile) and parses its JSON. */
function runLoad<T>(bin: string, args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const c = spawn('taskset', ['-c', '1', bin, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout!.on('data', (d) => { out += String(d); });
    c.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as T) : reject(new Error(`openat_loop exited ${code}`))));
  });
}

interface Calls { calls: number; best_ns: number; median_ns: number }
interface Flat { calls: number; seconds: number; rate: number }

function loaderCmd(args: string[]): string[] {
  return [process.execPath, '--import', 'tsx', join(REPO_ROOT, 'src', 'loaders', 'openat_snoop.ts'), ...args];
}

const bench: BenchModule = {
  name: GROUP,
  async run({ quick }) {
    const rows: BenchRow[] = [];
    const n = quick ? 20_000 : 200_000;
    const rounds = quick ? 3 : 7;
    const bin = buildC('openat_loop');
    ensureObject('openat_snoop');
    const dir = mkdtempSync(join(tmpdir(), 'libbpf-ts-oat-bench-'));
    const file = join(dir, 'target');
    writeFileSync(file, 'x');
    const haveBpftrace = spawnSync('bpftrace', ['--version']).status === 0;
    try {
      const calls = () => runLoad<Calls>(bin, ['calls', file, String(n), String(rounds)]);
      // ---- 1. ns per openat: none, ours, bpftrace, none again (the baseline is the better of the two)
      const base1 = await calls();
      const ours = await startTracer(loaderCmd([]), /attached/);
      let oursNs: Calls;
      let oursSummary = '';
      try {
        oursNs = await calls();
      } finally {
        await stop(ours);
        oursSummary = /^\d+ events.*$/m.exec(ours.stderr())?.[0] ?? ours.stderr().trim();
      }
      let btNs: Calls | undefined;
      if (haveBpftrace) {
        const bt = await startTracer(['bpftrace', '-e', BPFTRACE_PROGRAM], /Attaching \d+ probes/, true);
        try { btNs = await calls(); } finally { await stop(bt); }
      }
      const base2 = await calls();
      const base = Math.min(base1.median_ns, base2.median_ns);
      const oursAdded = oursNs.median_ns - base;
      rows.push({ group: GROUP, figure: 'openat+close, nothing attached (median of rounds)', unit: 'ns/call', c: base });
      rows.push({
        group: GROUP, figure: 'openat+close, tracer attached: ours (TS) vs bpftrace (C column)', unit: 'ns/call',
        ts: oursNs.median_ns, c: btNs?.median_ns,
      });
      if (btNs) {
        const btAdded = btNs.median_ns - base;
        rows.push({
          group: GROUP, figure: 'ns added per openat: ours (TS) vs bpftrace 0.17 (C column)', unit: 'ns/call',
          ts: oursAdded, c: btAdded, ratio: oursAdded / btAdded, goal: 'ours/bpftrace <= 1', pass: oursAdded <= btAdded,
          note: `median of ${rounds} rounds of ${n} openat+close on CPU 1; ours: the loader unfiltered, text to /dev/null (${oursSummary}); bpftrace -e '${BPFTRACE_PROGRAM}' > /dev/null`,
        });
      } else {
        rows.push({ group: GROUP, figure: 'ns added per openat: ours (bpftrace not installed)', unit: 'ns/call', ts: oursAdded, note: 'bpftrace missing: scripts/setup.sh installs it' });
      }
      // ---- 2. events/s delivered to TS, none lost, C flat out on the other core
      const secs = quick ? 1 : 3;
      const comm = 'openat_loop';
      const snoop = await startTracer(loaderCmd(['--comm', comm]), /attached/);
      let flat: Flat;
      let summary = '';
      try {
        flat = await runLoad<Flat>(bin, ['flat', file, String(secs)]);
        await new Promise((r) => setTimeout(r, 300)); // let the reader drain
      } finally {
        await stop(snoop);
        summary = /^\d+ events.*$/m.exec(snoop.stderr())?.[0] ?? '';
      }
      const m = /^(\d+) events, (\d+) unreadable names, (\d+) lost/.exec(summary);
      if (!m) throw new Error(`no summary from the loader: ${snoop.stderr().trim()}`);
      const [events, lost] = [Number(m[1]), Number(m[3])];
      rows.push({
        group: GROUP, figure: 'events/s delivered to TS, C opening flat out on the other core', unit: 'events/s',
        ts: events / flat.seconds, c: flat.rate, ratio: events / flat.calls,
        goal: 'none lost (events >= calls)', pass: lost === 0 && events >= flat.calls,
        note: `C column: openat calls/s of the load; ${flat.calls} calls in ${flat.seconds} s, loader --comm ${comm}: ${summary}`,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return rows;
  },
};
export default bench;
