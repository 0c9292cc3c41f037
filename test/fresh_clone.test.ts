/**
 * The quick start on a fresh copy of the checkout (its tracked and new
 * files, no node_modules, no BPF build): `npm start` is the first command a
 * newcomer runs, so it must set up what it needs by itself (npm ci, the BPF
 * objects) before running the demo. Here with --help, which needs no root:
 * what is tested is the set-up, not the demo. Needs the npm registry, clang
 * and the system packages that scripts/setup.sh would install.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../src/cli/build.js';

describe('a fresh checkout', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lbts-fresh-'));
  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

  it('npm start sets itself up (npm ci, BPF objects), then runs the demo', () => {
    // What a clone of the working tree holds: tracked and untracked-but-not-ignored files.
    const files = execFileSync('git', ['ls-files', '-z', '-c', '-o', '--exclude-standard'], { cwd: REPO_ROOT });
    execFileSync('sh', ['-c', `tar --null -T - -cf - | tar -xf - -C '${dir}'`], { cwd: REPO_ROOT, input: files });
    expect(existsSync(join(dir, 'node_modules'))).toBe(false);
    expect(existsSync(join(dir, 'bpf', 'build'))).toBe(false);

    const r = spawnSync('npm', ['start', '--silent', '--', '--help'], { cwd: dir, encoding: 'utf8', timeout: 170_000 });
    expect(r.stderr).not.toMatch(/not found/);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: demo \[options\]\n/);
    expect(r.stderr).toMatch(/setup: npm ci\n[\s\S]*setup: done in \d+ ms\n$/);
    expect(existsSync(join(dir, 'bpf', 'build', 'xdp_dnat.bpf.o'))).toBe(true);

    // Run again: the fast path, nothing reinstalled.
    const again = spawnSync('npm', ['start', '--silent', '--', '--help'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(again.status).toBe(0);
    expect(again.stderr).toContain('setup: node modules up to date\n');
  }, 240_000);
});
