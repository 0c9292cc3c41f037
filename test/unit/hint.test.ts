/**
 * Printed hints: commands a user can paste, from the repository root, from a
 * subdirectory and from elsewhere; and they run (no `tsx: not found`).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { makeCommand, repoPath, shellQuote, tsxCommand } from '../../src/cli/hint.js';
import { REPO_ROOT } from '../../src/cli/build.js';

describe('hints', () => {
  it('uses npx tsx and a relative path from the repository root', () => {
    expect(tsxCommand('scripts/services.ts', ['--pin-dir', '/sys/fs/bpf/x', 'list'], { cwd: REPO_ROOT, sudo: true }))
      .toBe('sudo npx tsx scripts/services.ts --pin-dir /sys/fs/bpf/x list');
    expect(tsxCommand('scripts/services.ts', ['list'], { cwd: REPO_ROOT, sudo: false })).toBe('npx tsx scripts/services.ts list');
    expect(makeCommand('hello', { cwd: REPO_ROOT })).toBe('make -C bpf hello');
  });

  it('uses absolute paths elsewhere, and the project tsx outside the repository', () => {
    expect(tsxCommand('scripts/services.ts', ['list'], { cwd: join(REPO_ROOT, 'src'), sudo: true }))
      .toBe(`sudo npx tsx ${join(REPO_ROOT, 'scripts/services.ts')} list`);
    expect(tsxCommand('scripts/services.ts', ['list'], { cwd: '/', sudo: true }))
      .toBe(`sudo ${join(REPO_ROOT, 'node_modules/.bin/tsx')} ${join(REPO_ROOT, 'scripts/services.ts')} list`);
    expect(repoPath('bpf', { cwd: '/' })).toBe(join(REPO_ROOT, 'bpf'));
    expect(makeCommand('hello', { cwd: '/tmp' })).toBe(`make -C ${join(REPO_ROOT, 'bpf')} hello`);
  });

  it('quotes what the shell would split', () => {
    expect(shellQuote('10.96.0.11:53/udp=10.244.1.6:5353')).toBe('10.96.0.11:53/udp=10.244.1.6:5353');
    expect(shellQuote("a b'c")).toBe(`'a b'\\''c'`);
  });

  for (const cwd of [REPO_ROOT, join(REPO_ROOT, 'src'), tmpdir()]) {
    it(`prints a command that runs when pasted in ${cwd}`, () => {
      const cmd = tsxCommand('scripts/services.ts', ['--help'], { cwd, sudo: false });
      const r = spawnSync('sh', ['-c', cmd], { cwd, encoding: 'utf8', timeout: 60_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^Usage: services/);
    });
  }
});
