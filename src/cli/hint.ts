/**
 * Commands printed as hints ("to list services, run: ...") must work when
 * pasted into the user's shell: tsx is not on PATH (it is in the project's
 * node_modules), the user's working directory may be anywhere, and commands
 * that touch BPF need root. Every hint is built here.
 */
import { isAbsolute, join, relative } from 'node:path';
import { isRoot } from '../ffi/sys.js';
import { REPO_ROOT } from './build.js';

/** Quotes one shell word when it needs it (POSIX sh single quotes). */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Where the hint will be run from, and whether the user is root without sudo. */
export interface HintContext {
  /** The directory the user runs commands in (default: process.cwd()). */
  cwd?: string;
  /**
   * Whether to prefix `sudo`: default true when this process is not root or
   * was started through sudo (SUDO_USER set), false for a root shell.
   */
  sudo?: boolean;
}

function inRepo(cwd: string): boolean {
  const r = relative(REPO_ROOT, cwd);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

/**
 * A file of the repository as the user can name it: relative to the
 * repository root when `cwd` is that root, absolute otherwise.
 */
export function repoPath(rel: string, ctx: HintContext = {}): string {
  const cwd = ctx.cwd ?? process.cwd();
  const abs = join(REPO_ROOT, rel);
  return cwd === REPO_ROOT ? rel : abs;
}

function sudoPrefix(ctx: HintContext): string {
  const sudo = ctx.sudo ?? (!isRoot() || process.env.SUDO_USER !== undefined);
  return sudo ? 'sudo ' : '';
}

/**
 * A pasteable command that runs one of the repository's TypeScript scripts
 * (`script` relative to the repository root, e.g. 'scripts/services.ts')
 * with `args`: `sudo npx tsx scripts/services.ts ...` from the repository
 * root (the script's absolute path from a subdirectory); from outside the
 * repository, the project's own tsx by absolute path (npx would not find it
 * there). Never throws.
 */
export function tsxCommand(script: string, args: string[] = [], ctx: HintContext = {}): string {
  const cwd = ctx.cwd ?? process.cwd();
  // npx finds the project's tsx from anywhere inside the repository, not from outside it.
  const runner = inRepo(cwd) ? 'npx tsx' : shellQuote(join(REPO_ROOT, 'node_modules', '.bin', 'tsx'));
  return `${sudoPrefix(ctx)}${runner} ${[repoPath(script, { cwd }), ...args].map(shellQuote).join(' ')}`;
}

/** A pasteable `make -C <bpf dir> <target>` (the bpf/ directory named as repoPath does). Never throws. */
export function makeCommand(target: string, ctx: HintContext = {}): string {
  return `make -C ${shellQuote(repoPath('bpf', ctx))} ${shellQuote(target)}`;
}
