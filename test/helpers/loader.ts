/**
 * Lesson loaders as subprocesses, the way a user runs them: start one, wait
 * for a line on its stderr ("attached"), send it signals, collect its output
 * and exit status. Every loader started here is remembered so a test file's
 * afterAll can kill whatever a failed test left running (stopAllLoaders).
 * Also: what the kernel says about loaded programs (bpftool), for checking
 * that a loader left nothing behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../src/cli/build.js';
import { launcherKind, procInfo, type ProcInfo } from '../../src/cli/lifetime.js';

/** How a loader ended: an exit code, or the signal that killed it. */
export interface LoaderExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running (or finished) loader. */
export interface LoaderProcess {
  readonly child: ChildProcess;
  /** Everything it wrote to stdout so far. */
  stdout(): string;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** Resolves once stderr matches `what`; rejects if the loader exits first or after `timeoutMs`. */
  waitFor(what: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves once stdout matches `what`; rejects if the loader exits first or after `timeoutMs`. */
  waitForStdout(what: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Sends a signal (no-op once it has exited). */
  kill(sig: NodeJS.Signals): void;
  /** Resolves when it exits. */
  readonly exited: Promise<LoaderExit>;
  /** Sends `sig` and waits for the exit; SIGKILLs it (and rejects) if it has not exited after `timeoutMs`. */
  stop(sig?: NodeJS.Signals, timeoutMs?: number): Promise<LoaderExit>;
  /**
   * The pid of the node process that runs the loader: the child itself, or,
   * under a launcher, its descendant that runs the loader's file (read from
   * /proc while the process tree is intact, e.g. after "attached").
   */
  loaderPid(): number | undefined;
}

/** Options of startLoader. */
export interface StartOptions {
  /** A command the loader runs under, e.g. setpriv to drop root. */
  prefix?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  /**
   * Start it the way the README does instead of as one process: `npx tsx
   * src/loaders/<lesson>.ts` (npm exec → sh -c → tsx → node), or tsx from
   * node_modules/.bin (tsx → node). kill() then signals the launcher.
   */
  launcher?: 'npx' | 'tsx';
  /** Run this file instead of src/loaders/<lesson>.ts (a test's own loader). */
  script?: string;
}

const running = new Set<LoaderProcess>();

/**
 * The prefix that runs a command without root: in a user namespace of its
 * own, where its euid is 65534 (nobody) and it has no capability in the
 * initial namespace (so no bpf(), no netlink changes), while the kernel
 * still sees the files of the checkout as its own. setpriv to user nobody
 * would do the same but could not read a checkout under a 0700 directory
 * (mktemp -d, CI's work folder).
 */
export const AS_NOBODY = ['unshare', '--user'];

/** Every process's pid, parent and command line, from /proc. */
function processTable(): Array<{ pid: number } & ProcInfo> {
  const all = [];
  for (const name of readdirSync('/proc')) {
    const info = /^\d+$/.test(name) ? procInfo(Number(name)) : undefined;
    if (info) all.push({ pid: Number(name), ...info });
  }
  return all;
}

/** True while process `pid` exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  const info = procInfo(pid);
  return info !== undefined && info.state !== 'Z';
}

/**
 * Starts `node --import tsx src/loaders/<lesson>.ts ...args` (one process,
 * so signals reach the loader itself, not a wrapper), or under the launcher
 * asked for. (tsx's cache and pipes go to $TMPDIR/tsx-<uid>: the suite's own
 * TMPDIR, test/setup/tmpdir.ts, for every user a run takes on.)
 */
export function startLoader(lesson: string, args: string[], opts: StartOptions = {}): LoaderProcess {
  const script = opts.script ?? join(REPO_ROOT, 'src', 'loaders', `${lesson}.ts`);
  const run = opts.launcher === 'npx' ? ['npx', 'tsx', script]
    : opts.launcher === 'tsx' ? [join(REPO_ROOT, 'node_modules', '.bin', 'tsx'), script]
      : [process.execPath, '--import', 'tsx', script];
  const cmd = [...(opts.prefix ?? []), ...run, ...args];
  const child = spawn(cmd[0], cmd.slice(1), {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  let out = '';
  let err = '';
  let done: LoaderExit | undefined;
  child.stdout!.on('data', (d) => { out += String(d); });
  child.stderr!.on('data', (d) => { err += String(d); });
  // 'close' (not 'exit'): every byte of stdout and stderr has been read by then.
  const exited = new Promise<LoaderExit>((resolve) => {
    child.on('close', (code, signal) => { done = { code, signal }; resolve(done); });
    child.on('error', (e) => { err += `spawn failed: ${e.message}\n`; done = { code: -1, signal: null }; resolve(done); });
  });
  const matches = (s: string, what: string | RegExp) => (typeof what === 'string' ? s.includes(what) : what.test(s));
  const waitOn = (get: () => string, what: string | RegExp, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      const tick = () => {
        if (matches(get(), what)) return resolve();
        if (done) return reject(new Error(`${lesson} exited (${done.code ?? done.signal}) before printing ${String(what)}; stderr:\n${err}`));
        if (Date.now() - t0 > timeoutMs) return reject(new Error(`timed out waiting for ${String(what)} from ${lesson}; stderr:\n${err}`));
        setTimeout(tick, 25);
      };
      tick();
    });
  const p: LoaderProcess = {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor: (what, timeoutMs = 30_000) => waitOn(() => err, what, timeoutMs),
    waitForStdout: (what, timeoutMs = 30_000) => waitOn(() => out, what, timeoutMs),
    kill(sig) { if (!done) child.kill(sig); },
    exited,
    loaderPid() {
      if (!opts.launcher) return child.pid;
      const table = processTable();
      const tree = new Set([child.pid]);
      for (let grew = true; grew;) {
        grew = false;
        for (const p of table) if (!tree.has(p.pid) && tree.has(p.ppid)) { tree.add(p.pid); grew = true; }
      }
      return table.find((p) => tree.has(p.pid) && p.argv.includes(script) && !launcherKind(p.argv))?.pid;
    },
    async stop(sig = 'SIGINT', timeoutMs = 15_000) {
      p.kill(sig);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), timeoutMs); });
      const r = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (r === 'timeout') {
        p.kill('SIGKILL');
        await exited;
        throw new Error(`${lesson} did not exit within ${timeoutMs} ms of ${sig}; stderr:\n${err}`);
      }
      return r;
    },
  };
  running.add(p);
  void exited.then(() => running.delete(p));
  return p;
}

/** Runs a loader to completion (SIGKILL after `timeoutMs`) and returns its exit and output. */
export async function runLoader(lesson: string, args: string[], opts: StartOptions & { timeoutMs?: number } = {}): Promise<LoaderExit & { stdout: string; stderr: string }> {
  const p = startLoader(lesson, args, opts);
  const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  const r = await p.exited;
  clearTimeout(timer);
  return { ...r, stdout: p.stdout(), stderr: p.stderr() };
}

/** SIGKILLs every loader started here that is still running, and waits for them. For afterAll. */
export async function stopAllLoaders(): Promise<void> {
  const all = [...running];
  for (const p of all) p.kill('SIGKILL');
  await Promise.all(all.map((p) => p.exited));
}

/** Polls `fn` every 50 ms until it returns true (→ true) or `timeoutMs` passes (→ false). */
export async function eventually(fn: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const t0 = Date.now();
  for (;;) {
    if (await fn()) return true;
    if (Date.now() - t0 > timeoutMs) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A loaded program as bpftool lists it. */
export interface LoadedProgram { id: number; name?: string; type: string; tag: string }

/** Every program loaded in the kernel (bpftool prog show -j). Throws when bpftool fails. */
export function loadedPrograms(): LoadedProgram[] {
  const r = spawnSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`bpftool prog show: ${r.stderr.trim() || `exit ${r.status}`}`);
  return JSON.parse(r.stdout) as LoadedProgram[];
}

/** True while a program with this id is loaded. */
export function programLoaded(id: number): boolean {
  return loadedPrograms().some((p) => p.id === id);
}

/**
 * Runs `tsx scripts/services.ts ...args` to completion; resolves with its
 * exit code and output. `closedStdout`: its stdout is a pipe whose reader has
 * gone before it writes (as `| head -1` once head has its line).
 */
export function runServices(args: string[], opts: { closedStdout?: boolean } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'services.ts'), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    if (opts.closedStdout) c.stdout.destroy();
    else c.stdout.on('data', (d) => { stdout += String(d); });
    c.stderr.on('data', (d) => { stderr += String(d); });
    c.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
