/**
 * The REPL (`bpfts repl`): from piped input (a script) and in a
 * pseudo-terminal (util-linux `script`), it opens a lesson object, attaches
 * it to a lab interface, reads and writes a map; on exit (end of input,
 * Ctrl-D, SIGTERM) the program is gone and the lab is down.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../src/cli/build.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually } from './helpers/loader.js';

const BIN = join(REPO_ROOT, 'bin', 'bpfts.js');
const tmp = mkdtempSync(join(tmpdir(), 'bpfts-repl-'));
const env = { ...process.env, LIBBPF_TS_REPL_HISTORY: join(tmp, 'history') };
const children: ChildProcessWithoutNullStreams[] = [];

function start(cmd: string[]): { child: ChildProcessWithoutNullStreams; out: () => string; err: () => string; exited: Promise<number | null> } {
  const child = spawn(cmd[0], cmd.slice(1), { cwd: REPO_ROOT, env });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += String(d); });
  child.stderr.on('data', (d) => { err += String(d); });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exited };
}

const progExists = (id: number) => spawnSync('bpftool', ['prog', 'show', 'id', String(id)], { stdio: 'ignore' }).status === 0;
const nsExists = (ns: string) => existsSync(`/run/netns/${ns}`);

/** The lines a session runs: open, attach to a lab, write and read a map; prints "prog <id>". */
const script = (tag: string) => [
  "const obj = open('packet_counter')",
  "const m = obj.map('proto_count', u8, u64)",
  'm.set(6, 42)',
  "'value ' + m.get(6)",
  `const l = await lab.up('${tag}')`,
  "'prog ' + obj.program().attachXdp(l.hostIf).info().progId",
  "'progs ' + progs().filter((p) => p.name === 'packet_counter').length",
];

describe.skipIf(!kernelTests())('bpfts repl', () => {
  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', 'lbts-rpa']);
    spawnSync('ip', ['netns', 'del', 'lbts-rpb']);
    spawnSync('ip', ['netns', 'del', 'lbts-rpc']);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('piped input: evaluates line by line (top-level await included), closes everything at the end of input', async () => {
    const r = start([process.execPath, BIN, 'repl']);
    r.child.stdin.end(`${script('rpa').join('\n')}\n`);
    expect(await r.exited).toBe(0);
    expect(r.err()).toBe('');
    const lines = r.out().trim().split('\n');
    expect(lines[0]).toBe("'value 42'");
    const id = Number(/^'prog (\d+)'$/.exec(lines[1])![1]);
    expect(lines[2]).toMatch(/^'progs [1-9]\d*'$/);
    expect(lines).toHaveLength(3);
    expect(progExists(id)).toBe(false);
    expect(nsExists('lbts-rpa')).toBe(false);
  });

  it('SIGTERM: detaches and closes what it opened, then exits', async () => {
    const r = start([process.execPath, BIN, 'repl']);
    r.child.stdin.write(`${script('rpb').join('\n')}\n`); // stdin stays open
    expect(await eventually(() => /'progs \d+'/.test(r.out()), 20_000)).toBe(true);
    const id = Number(/'prog (\d+)'/.exec(r.out())![1]);
    expect(progExists(id)).toBe(true);
    expect(nsExists('lbts-rpb')).toBe(true);
    r.child.kill('SIGTERM');
    expect(await r.exited).toBe(0);
    expect(progExists(id)).toBe(false);
    expect(nsExists('lbts-rpb')).toBe(false);
  });

  it('in a terminal: banner, prompt, a map read, history, Ctrl-D closes everything', async () => {
    const r = start(['script', '-qfec', `${process.execPath} ${BIN} repl`, '/dev/null']);
    const prompts = () => r.out().split('bpf> ').length - 1;
    expect(await eventually(() => prompts() >= 1, 20_000)).toBe(true);
    expect(r.out()).toContain("const obj = open('packet_counter')");
    for (const [i, line] of script('rpc').entries()) {
      r.child.stdin.write(`${line}\r`);
      expect(await eventually(() => prompts() >= i + 2, 20_000)).toBe(true);
    }
    expect(r.out()).toContain("'value 42'");
    // tab completion on the object's members: "obj.progr" + Tab completes to "obj.program"
    const before = prompts();
    r.child.stdin.write('obj.progr\t');
    await new Promise((res) => setTimeout(res, 500));
    r.child.stdin.write('().name\r');
    expect(await eventually(() => prompts() > before, 20_000)).toBe(true);
    expect(r.out()).toContain("'packet_counter'");
    const id = Number(/'prog (\d+)'/.exec(r.out())![1]);
    expect(progExists(id)).toBe(true);
    r.child.stdin.write('\x04'); // Ctrl-D
    expect(await r.exited).toBe(0);
    expect(progExists(id)).toBe(false);
    expect(nsExists('lbts-rpc')).toBe(false);
    expect(readFileSync(join(tmp, 'history'), 'utf8')).toContain("const obj = open('packet_counter')");
  });
});
