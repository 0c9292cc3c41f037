/**
 * The scripts' command lines (src/cli/command.ts): every command answers
 * --help with its usage on stdout and exit 0, without doing anything else;
 * bad usage exits 2 with the error on stderr and nothing on stdout.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../src/cli/build.js';

/**
 * Runs `node --import tsx <script> ...args` from the repository root; kills
 * it after 30 s. With `closeStdout` the reading end of its stdout is closed
 * at once, as `| head -0` would.
 */
function runScript(script: string, args: string[], closeStdout = false): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, script), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    if (closeStdout) child.stdout.destroy();
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
  });
}

describe('--help and bad usage of the scripts', () => {
  const helps: Array<[string, string[], RegExp]> = [
    ['src/demo.ts', ['--help'], /^Usage: demo \[options\]\n[\s\S]*sudo npm start/],
    ['scripts/lab.ts', ['--help'], /^Usage: lab \[options\] \[command\]\n[\s\S]*--prefix <prefix>[\s\S]*up \[options\] <kind> <tag>/],
    ['scripts/lab.ts', ['up', '--help'], /^Usage: lab up \[options\] <kind> <tag>\n/],
    ['scripts/lab.ts', ['help', 'clean'], /^Usage: lab clean \[options\] \[match\]\n/],
    ['bench/run.ts', ['--help'], /^Usage: bench \[options\]\n[\s\S]*--only <group>[\s\S]*xdp_dnat/],
  ];
  it.each(helps)('%s %j prints its usage on stdout and exits 0', async (script, args, usage) => {
    const r = await runScript(script, args);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(usage);
  });

  const bad: Array<[string, string[], RegExp]> = [
    ['src/demo.ts', ['--bogus'], /^error: unknown option '--bogus'\n$/],
    ['src/demo.ts', ['extra'], /^error: too many arguments/],
    ['scripts/lab.ts', [], /^Usage: lab /],
    ['scripts/lab.ts', ['up', 'triangle', 'x'], /^error: command-argument value 'triangle' is invalid for argument 'kind'/],
    ['scripts/lab.ts', ['up', 'pair'], /^error: missing required argument 'tag'\n$/],
    ['scripts/lab.ts', ['nosuch'], /^error: unknown command 'nosuch'\n$/],
    ['bench/run.ts', ['--only', 'nosuch'], /^error: --only nosuch: no such group \(have: .*xdp_dnat.*\)\n$/],
    ['bench/run.ts', ['--quick', '--bogus'], /^error: unknown option '--bogus'\n$/],
  ];
  it.each(bad)('%s %j is refused: exit 2, the error on stderr, nothing on stdout', async (script, args, error) => {
    const r = await runScript(script, args);
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toMatch(error);
  });

  it.each([
    ['src/demo.ts', ['--help']],
    ['scripts/lab.ts', ['--help']],
    ['scripts/lab.ts', ['list']],
    ['bench/run.ts', ['--help']],
  ])('%s %j ends cleanly when its reader has gone (EPIPE): exit 0, nothing on stderr', async (script, args) => {
    expect(await runScript(script, args, true)).toMatchObject({ code: 0, stderr: '' });
  });

  it('lab.ts refuses a bad --prefix in one line, before touching anything', async () => {
    const r = await runScript('scripts/lab.ts', ['--prefix', 'Bad_', 'list']);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toMatch(/^error: lab prefix 'Bad_': use 2-16 characters of a-z, 0-9 and '-', starting with a letter and ending with '-'\n$/);
  });
});
