/**
 * `npm start` (src/demo.ts) on a real kernel: it runs through, and however it
 * ends (done, its reader gone: `| head`, SIGTERM, SIGHUP, SIGINT) it leaves
 * nothing: no namespace of its lab, no pin, no xdp_dnat program loaded, no
 * process of its own (the demo, its loader, its servers).
 * Kernel tests: skipped when not root, but under CI=true they must run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../src/cli/build.js';
import { cleanup, run } from '../src/lab/index.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, loadedPrograms } from './helpers/loader.js';

const TAG = 'dnatdemo';
const PIN_DIR = '/sys/fs/bpf/libbpf-ts/xdp_dnat/demo';
const DEMO = join(REPO_ROOT, 'src', 'demo.ts');

/** What the demo may leave behind; [] when nothing. */
async function leftovers(): Promise<string[]> {
  const left: string[] = [];
  const nss = (await run(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]);
  left.push(...nss.filter((n) => n.startsWith(`lbts-${TAG}`)).map((n) => `namespace ${n}`));
  if (existsSync(PIN_DIR)) left.push(`pins ${PIN_DIR}`);
  left.push(...loadedPrograms().filter((p) => p.name === 'xdp_dnat' || p.name === 'tc_dnat_reply').map((p) => `program ${p.name} (id ${p.id})`));
  const ps = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).stdout.split('\n');
  left.push(...ps.filter((l) => l.includes(DEMO) || l.includes(PIN_DIR) || l.includes('lbts-dnatdemo')).map((l) => `process ${l.trim()}`));
  return left;
}

/** Waits (up to 5 s) for nothing to be left, and returns what is. */
async function leftAfter(): Promise<string[]> {
  let left: string[] = [];
  await eventually(async () => (left = await leftovers()).length === 0, 5000);
  return left;
}

/**
 * Runs the demo (`node --import tsx src/demo.ts`) and collects its output;
 * piped into `pipeTo` (a shell command) it runs under sh, which prints the
 * demo's exit status on stderr ("demo exit N").
 */
function startDemo(pipeTo?: string) {
  const node = `${process.execPath} --import tsx ${DEMO}`;
  const child = pipeTo
    ? spawn('sh', ['-c', `(${node}; echo "demo exit $?" >&2) | ${pipeTo}`], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, ['--import', 'tsx', DEMO], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 170_000);
  void exited.then(() => clearTimeout(killer));
  return {
    child, exited,
    stdout: () => stdout,
    stderr: () => stderr,
    /** Resolves once stdout contains `what`; rejects when the demo exits first. */
    async waitFor(what: string): Promise<void> {
      if (!(await eventually(() => stdout.includes(what) || child.exitCode !== null, 150_000)) || !stdout.includes(what)) {
        throw new Error(`the demo did not print '${what}'; stdout:\n${stdout}\nstderr:\n${stderr}`);
      }
    },
  };
}

// A run takes a minute or more on a busy machine: two loader starts, a restart under held connections.
describe.skipIf(!kernelTests())('the demo (npm start) leaves nothing however it ends', { timeout: 180_000 }, () => {
  afterAll(async () => {
    await cleanup(TAG).catch(() => undefined);
  });

  it('runs through and ends with done, exit 0', async () => {
    expect(await leftovers()).toEqual([]);
    const d = startDemo();
    expect(await d.exited).toEqual({ code: 0, signal: null });
    expect(d.stdout()).toMatch(/✓ TCP data both ways[\s\S]*loader stopped: programs detached, pins removed\n {2}lab dnatdemo removed\ndone\n$/);
    // Two backends behind the VIP; after one is removed every new connection goes to the other.
    expect(d.stdout()).toMatch(/✓ 8 more connections, spread by Maglev over the 5-tuples: \d on 10\.244\.1\.5:8080, \d on 10\.244\.1\.6:8080\n/);
    expect(d.stdout()).toContain('✓ 8 new connections: 8 on 10.244.1.5:8080, 0 on 10.244.1.6:8080\n');
    expect(d.stdout()).toMatch(/✓ the \d held connections on 10\.244\.1\.5:8080 carried on exchanging data/);
    // The loader restarted under held connections: none reset, the state adopted, the programs swapped in the links.
    expect(d.stdout()).toMatch(/\$ kill -TERM \d+ [\s\S]*loader: adopted 9 pinned maps[\s\S]*loader: replaced the program in place: xdp[\s\S]*service 10\.96\.0\.11:53\/udp → 10\.244\.1\.5:5353 \(adopted\)/);
    expect(d.stdout()).toMatch(/✓ all 6 held connections echoed their 1000 bytes every round, none reset: ([3-9]|[1-9]\d+) rounds under the old loader, [1-9]\d* while it stopped and the new one started, ([3-9]|[1-9]\d+) under the new one\n/);
    expect(d.stdout()).toMatch(/✓ adopted, not rebuilt: the same 2 services; each held connection's entry kept, on its backend/);
    expect(d.stdout()).toMatch(/✓ the pinned xdp link now runs program id (\d+) \(was (?!\1\))\d+\): swapped in place/);
    expect(d.stderr()).toBe('');
    expect(await leftAfter()).toEqual([]);
  });

  it.each([5, 22])('piped into head -%i: ends cleanly on EPIPE (exit 0) and tears down', async (n) => {
    // The shell ends when both have; the demo's own exit status comes on stderr.
    const d = startDemo(`head -${n}`);
    expect(await d.exited).toEqual({ code: 0, signal: null });
    expect(d.stdout().split('\n')).toHaveLength(n + 1);
    expect(d.stderr()).toBe('demo exit 0\n');
    expect(await leftAfter()).toEqual([]);
  });

  it.each([
    ['SIGTERM', 'loader: Ctrl-C to stop', 143],
    ['SIGHUP', 'loader: Ctrl-C to stop', 129],
    ['SIGINT', '[2/9] build the lab', 130],
  ] as const)('on %s (after "%s") tears down and exits %i', async (sig, after, code) => {
    const d = startDemo();
    await d.waitFor(after);
    d.child.kill(sig);
    const r = await d.exited;
    expect(d.stdout()).toContain(`interrupted (${sig}): tearing down`);
    if (after.startsWith('loader')) expect(d.stdout()).toContain('loader stopped: programs detached, pins removed');
    expect(r).toEqual({ code, signal: null });
    expect(await leftAfter()).toEqual([]);
  });

  it.each([
    ['its loader runs', 'loader: Ctrl-C to stop'],
    ['the restarted loader is starting', '(no --service: it keeps the adopted services)'],
  ])('killed outright (SIGKILL) while %s: the loader stops, the reaper removes the pins (programs detached), no process left', async (_, after) => {
    const d = startDemo();
    await d.waitFor(after);
    d.child.kill('SIGKILL');
    expect(await d.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // Only the lab's namespaces stay (nothing runs in them); the next run removes them first.
    await eventually(async () => (await leftovers()).every((l) => l.startsWith('namespace ')), 30_000);
    expect((await leftovers()).filter((l) => !l.startsWith('namespace '))).toEqual([]);
    await cleanup(TAG);
    expect(await leftAfter()).toEqual([]);
  });
});
