/**
 * bindToLauncher (src/cli/lifetime.ts) without the kernel's BPF side: which
 * command lines are launchers, and, with real processes, that a process
 * learns of a launcher's exit — the grandparent's too, which the
 * parent-death signal does not cover — and of a parent that died before it
 * bound itself (the race).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { launcherKind } from '../../src/cli/lifetime.js';
import { REPO_ROOT } from '../../src/cli/build.js';

describe('launcherKind', () => {
  it('knows the launchers of the README commands', () => {
    expect(launcherKind(['npm exec tsx src/loaders/hello.ts veth0'])).toBe('npm exec');
    expect(launcherKind(['/usr/bin/node', '/usr/lib/node_modules/npm/bin/npx-cli.js', 'tsx', 'x.ts'])).toBe('npx');
    expect(launcherKind(['/usr/bin/node', '/usr/bin/npm', 'start'])).toBe('npm');
    expect(launcherKind(['sh', '-c', 'tsx', 'x.ts'])).toBe('sh -c');
    expect(launcherKind(['/bin/bash', '-c', 'tsx x.ts'])).toBe('sh -c');
    expect(launcherKind(['node', '/repo/node_modules/.bin/tsx', 'x.ts'])).toBe('tsx');
    expect(launcherKind(['/usr/bin/node', '/repo/node_modules/tsx/dist/cli.mjs', 'x.ts'])).toBe('tsx');
    expect(launcherKind(['sudo', 'npx', 'tsx', 'x.ts'])).toBe('sudo');
    expect(launcherKind(['/usr/bin/sudo', 'tsx', 'x.ts'])).toBe('sudo');
  });

  it('stops at anything else: a shell, the loader itself, a supervisor', () => {
    expect(launcherKind(['-bash'])).toBeUndefined();
    expect(launcherKind(['bash'])).toBeUndefined();
    expect(launcherKind(['sh', 'script.sh'])).toBeUndefined();
    expect(launcherKind(['/usr/bin/node', '--require', '/r/tsx/dist/preflight.cjs', '--import', 'file:///r/tsx/dist/loader.mjs', 'x.ts'])).toBeUndefined();
    expect(launcherKind(['node', '/repo/node_modules/vitest/dist/workers/forks.js'])).toBeUndefined();
    expect(launcherKind(['/sbin/init'])).toBeUndefined();
    expect(launcherKind([])).toBeUndefined();
  });
});

/**
 * A node process that binds itself and prints what it watches, then why it
 * stopped. With WAIT_FOR_ORPHAN set, it first creates $DIR/started (so the
 * parent can exit) and binds only once its parent is gone.
 */
const PROBE = `
  import { writeFileSync } from 'node:fs';
  import { bindToLauncher } from ${JSON.stringify(join(REPO_ROOT, 'src', 'cli', 'lifetime.ts'))};
  const marker = process.env.WAIT_FOR_ORPHAN && process.env.DIR + '/started';
  if (marker) {
    const parent = process.ppid;
    writeFileSync(marker, '');
    while (process.ppid === parent) await new Promise((r) => setTimeout(r, 20));
  }
  process.on('SIGTERM', () => { console.log('SIGTERM'); process.exit(0); });
  const b = bindToLauncher((why) => { console.log('gone: ' + why); process.exit(0); });
  console.log('bound ' + JSON.stringify(b.launchers));
  setTimeout(() => { console.log('still running'); process.exit(1); }, 10000);
`;

/** Runs `sh -c script` where $NODE runs the probe; returns it and everything written until the pipe closes. */
function runShell(script: string, env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'libbpf-ts-lifetime-'));
  writeFileSync(join(dir, 'probe.mts'), PROBE);
  const child = spawn('sh', ['-c', script], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE: `${process.execPath} --import tsx ${join(dir, 'probe.mts')}`, DIR: dir, ...env },
  });
  let out = '';
  child.stdout.on('data', (d) => { out += String(d); });
  child.stderr.on('data', (d) => { out += String(d); });
  const closed = new Promise<void>((r) => child.stdout.on('close', () => r())).finally(() => rmSync(dir, { recursive: true, force: true }));
  return { child, out: () => out, closed, dir };
}

async function until(fn: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !fn(); i++) await new Promise((ok) => setTimeout(ok, 50));
}

describe('bindToLauncher', () => {
  it('notices a launcher above its parent exiting (SIGKILL), which the parent-death signal does not cover', async () => {
    // sh -c (killed) → sh -c (lives on) → node
    const r = runShell(`sh -c '$NODE; true'; true`);
    await until(() => r.out().includes('bound'));
    const bound = /bound (.*)/.exec(r.out());
    expect(bound, r.out()).not.toBeNull();
    const launchers = JSON.parse(bound![1]) as Array<{ pid: number; what: string }>;
    expect(launchers.map((l) => l.what)).toEqual(['sh -c', 'sh -c']);
    expect(launchers[1].pid).toBe(r.child.pid);
    r.child.kill('SIGKILL');
    await r.closed;
    expect(r.out()).toContain(`gone: launcher sh -c (pid ${r.child.pid}) has exited\n`);
  }, 30_000);

  it('gets SIGTERM when its parent exits', async () => {
    const r = runShell(`$NODE; true`);
    await until(() => r.out().includes('bound'));
    // The walk stopped at this test's worker, which is not a launcher.
    expect(r.out()).toBe(`bound ${JSON.stringify([{ pid: r.child.pid, what: 'sh -c' }])}\n`);
    r.child.kill('SIGKILL');
    await r.closed;
    expect(r.out()).toMatch(/\n(SIGTERM|gone: launcher sh -c \(pid \d+\) has exited)\n$/);
  }, 30_000);

  it('stops at once when its parent exited before it bound itself', async () => {
    // The parent sh exits once the probe has started; the probe binds only after.
    const r = runShell(`$NODE & until [ -e "$DIR/started" ]; do sleep 0.05; done`, { WAIT_FOR_ORPHAN: '1' });
    await r.closed;
    expect(r.out()).toMatch(/^bound \[\]\ngone: the process that started this one \(pid \d+\) has exited\n$/);
  }, 30_000);
});
