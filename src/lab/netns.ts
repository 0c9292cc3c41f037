/**
 * Commands, and network namespaces and links through iproute2: the steps
 * the lab's topologies (./topology.ts) are built from.
 *
 * `run`/`runNs` run a command (optionally inside a namespace) and turn a
 * failure into one line. Needs root for anything that changes namespaces or
 * links; `ip` (iproute2) and `sysctl` (procps) on PATH.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';

export interface RunOptions {
  /** Kill the command (SIGKILL) and reject after this long; default 30 s. */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  input?: string;
  /** Kill the command (SIGKILL) and reject when this aborts. */
  signal?: AbortSignal;
}

/** A command that failed: the message is one line; the output stays available. */
export class CommandError extends Error {
  override name = 'CommandError';
  readonly cmd: string[];
  /** Exit code, or null when killed by a signal or never started. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  constructor(message: string, cmd: string[], code: number | null, stdout: string, stderr: string) {
    super(message);
    this.cmd = cmd;
    this.code = code;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

/** The command as one short line (inline scripts shown by their size). */
function showCmd(cmd: string[]): string {
  const s = cmd.map((a) => (a.includes('\n') ? `<${a.length}-char script>` : a)).join(' ');
  return s.length > 200 ? `${s.slice(0, 197)}...` : s;
}

/**
 * Runs `cmd` (argv, no shell) and resolves with its output when it exits 0.
 * Rejects with a CommandError whose one-line message names the command and
 * the last line of its stderr (or the exit code, signal, timeout, abort, or
 * "not found" when it could not start).
 */
export function run(cmd: string[], opts: RunOptions = {}): Promise<{ stdout: string; stderr: string }> {
  if (cmd.length === 0) return Promise.reject(new Error('run: empty command'));
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd.slice(1), {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], signal: opts.signal, killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => { /* the command exited without reading it */ });
      child.stdin!.end(opts.input);
    }
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    const fail = (why: string, code: number | null) =>
      reject(new CommandError(`${showCmd(cmd)}: ${why}`, cmd, code, stdout, stderr));
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      fail(e.code === 'ENOENT' ? `${cmd[0]}: command not found` : e.name === 'AbortError' ? 'aborted' : e.message, null);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && !timedOut) return resolve({ stdout, stderr });
      const last = stderr.split('\n').map((l) => l.trim()).filter(Boolean).pop();
      if (timedOut) fail(`timed out after ${timeoutMs / 1000} s${last ? ` (${last})` : ''}`, code);
      else fail(last ?? (signal ? `killed by ${signal}` : `exit code ${code}`), code);
    });
  });
}

/** Runs `cmd` inside network namespace `ns` (`ip netns exec ns ...`); rejects like run(). */
export function runNs(ns: string, cmd: string[], opts?: RunOptions): Promise<{ stdout: string; stderr: string }> {
  if (!ns) return Promise.reject(new Error('runNs: empty namespace name'));
  return run(['ip', 'netns', 'exec', ns, ...cmd], opts);
}

const HAVE_IPV6 = existsSync('/proc/sys/net/ipv6');

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The names of the network namespaces that exist. Throws when `ip` fails. */
export async function listNetns(): Promise<string[]> {
  const { stdout } = await run(['ip', 'netns', 'list']);
  return stdout.split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
}

/** A link as `ip -j link show` describes it. */
export interface LinkJson { ifindex: number; ifname: string; address: string; operstate: string; ifalias?: string }

/** The links of namespace `ns` (null: root). Throws when `ip` fails (e.g. no such namespace). */
export async function links(ns: string | null): Promise<LinkJson[]> {
  const { stdout } = await run(ns ? ['ip', '-n', ns, '-j', 'link', 'show'] : ['ip', '-j', 'link', 'show']);
  return JSON.parse(stdout || '[]') as LinkJson[];
}

/** Link `ifname` of namespace `ns` (null: root), or undefined. */
export async function link(ns: string | null, ifname: string): Promise<LinkJson | undefined> {
  return (await links(ns)).find((l) => l.ifname === ifname);
}

/** Sets sysctls in namespace `ns` (null: root); keys under net.ipv6 are skipped when IPv6 is off in the kernel. */
export async function sysctl(ns: string | null, settings: Record<string, string | number>): Promise<void> {
  const kv = Object.entries(settings)
    .filter(([k]) => HAVE_IPV6 || !k.startsWith('net.ipv6.'))
    .map(([k, v]) => `${k}=${v}`);
  if (kv.length === 0) return;
  if (ns) await runNs(ns, ['sysctl', '-q', '-w', ...kv]);
  else for (const [k, v] of kv.map((s) => s.split('='))) await writeFile(`/proc/sys/${k.replaceAll('.', '/')}`, `${v}\n`);
}

/** Creates namespace `ns` with loopback up and IPv6 off for every interface it will get. */
export async function addNs(ns: string): Promise<void> {
  await run(['ip', 'netns', 'add', ns]);
  await run(['ip', '-n', ns, 'link', 'set', 'dev', 'lo', 'up']);
  await sysctl(ns, { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 });
}

/** Deletes namespace `ns`; resolves false when it was already gone. Throws when it stays. */
export async function delNs(ns: string): Promise<boolean> {
  try {
    await run(['ip', 'netns', 'del', ns]);
    return true;
  } catch (e) {
    if ((await listNetns()).includes(ns)) throw e;
    return false;
  }
}

/** Deletes root-namespace interface `ifname` if it carries our mark `alias`; resolves false when it is gone or not ours. */
export async function delMarkedLink(ifname: string, alias: string): Promise<boolean> {
  const l = await link(null, ifname);
  if (!l || l.ifalias !== alias) return false;
  try {
    await run(['ip', 'link', 'del', 'dev', ifname]);
    return true;
  } catch (e) {
    if (await link(null, ifname)) throw e;
    return false;
  }
}

/** Waits (up to 3 s) until the links are operationally up: before that a veth drops what it is given. Throws after 3 s. */
export async function waitUp(ns: string | null, ifnames: string[]): Promise<void> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const all = await links(ns);
    const down = ifnames.filter((n) => all.find((l) => l.ifname === n)?.operstate !== 'UP');
    if (down.length === 0) return;
    if (Date.now() > deadline) throw new Error(`lab: ${down.join(', ')}${ns ? ` in ${ns}` : ''} not up after 3 s`);
    await sleep(10);
  }
}
