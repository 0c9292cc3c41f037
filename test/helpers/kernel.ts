/**
 * Gating of kernel tests: they need root. Under CI=true they must run, so a
 * missing privilege fails the suite instead of skipping it.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { release } from 'node:os';
import { isRoot } from '../../src/ffi/sys.js';
import { REPO_ROOT } from '../../src/cli/build.js';

const ci = process.env.CI === 'true' || process.env.CI === '1';

/**
 * True when kernel tests can run. Throws under CI when they cannot (not root),
 * so `describe.skipIf(!kernelTests())` never silently skips in CI.
 */
export function kernelTests(): boolean {
  if (isRoot()) return true;
  if (ci) throw new Error('kernel tests must run under CI=true, but this is not root');
  return false;
}

/**
 * True when the running kernel is at least major.minor. Gate tests of
 * features with it: a feature the kernel should have is tested (and fails
 * if missing); one it can't have is skipped.
 */
export function kernelAtLeast(major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release());
  if (!m) throw new Error(`cannot parse kernel release '${release()}'`);
  const [ma, mi] = [Number(m[1]), Number(m[2])];
  return ma > major || (ma === major && mi >= minor);
}

/**
 * Whether to run the tests of a kernel feature: when `probe` finds it, and
 * always from kernel `since` on, where it must exist (so a probe that wrongly
 * says no there makes the tests run and fail, not skip). Skipped only on an
 * older kernel that lacks it. False when kernel tests cannot run at all.
 */
export function featureTests(probe: () => boolean, since: [number, number]): boolean {
  if (!kernelTests()) return false;
  return probe() || kernelAtLeast(since[0], since[1]);
}

const LOCK = '/tmp/libbpf-ts-trace.lock';

/**
 * Runs fn while holding a machine-wide lock on trace_pipe: trace_pipe hands
 * each line to one reader, so tests that read it must not overlap.
 */
export async function withTraceLock<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      // A lock older than 2 minutes was left by a crashed run.
      try { if (Date.now() - statSync(LOCK).mtimeMs > 120_000) rmdirSync(LOCK); } catch { /* gone */ }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${LOCK}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    try { rmdirSync(LOCK); } catch { /* gone */ }
  }
}

/**
 * Starts a process that holds `path` open for reading without reading it
 * (as a second trace_pipe reader would); resolves once it has it open.
 * release() kills it and resolves when it is gone.
 */
export async function holdOpen(path: string): Promise<{ pid: number; release(): Promise<void> }> {
  const child = spawn('sh', ['-c', `exec 3<"${path}"; echo ready; exec sleep 60`], { stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`could not open ${path} (exit ${code})`)));
  });
  return { pid: child.pid!, release: async () => { child.kill('SIGKILL'); await exited; } };
}

/**
 * Removes a test's pin directory and then its parents up to and including
 * /sys/fs/bpf/libbpf-ts while they are empty (other test files may still
 * use them), so a run leaves nothing under /sys/fs/bpf.
 */
export function removePins(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  for (let d = dirname(dir); d.startsWith('/sys/fs/bpf/libbpf-ts'); d = dirname(d)) {
    try { rmdirSync(d); } catch { return; }
  }
}

/**
 * Runs the TypeScript `script` (under node --import tsx, from the repository
 * root) inside network namespace `ns` (nsenter --net) and returns the last
 * line of its stdout parsed as JSON. Rejects with `label`, the exit status
 * and the worker's stderr when it fails. `opts.cpu` pins the worker to one
 * CPU (taskset), so its test runs all use that CPU's per-CPU state.
 */
export function runJsonWorkerInNetns<T>(ns: string, script: string, args: string[], label: string, opts: { cpu?: number } = {}): Promise<T> {
  const pin = opts.cpu === undefined ? [] : ['taskset', '-c', String(opts.cpu)];
  return new Promise((resolve, reject) => {
    const c = spawn('nsenter', [`--net=/run/netns/${ns}`, ...pin, process.execPath, '--import', 'tsx', script, ...args],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => { out += String(d); });
    c.stderr.on('data', (d) => { err += String(d); });
    c.on('error', reject);
    c.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${label} exited ${code}: ${err.trim()}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!) as T);
    });
  });
}
