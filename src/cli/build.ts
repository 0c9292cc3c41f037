/**
 * Finding a lesson's BPF object, rebuilding it when it is missing or older
 * than its sources.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCommand } from './hint.js';

/** The repository's root directory. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** bpf/ */
export const BPF_DIR = join(REPO_ROOT, 'bpf');

/** The path of bpf/build/<name>.bpf.o (not checked). */
export function objectPath(name: string): string {
  return join(BPF_DIR, 'build', `${name}.bpf.o`);
}

function newestSource(bpfDir: string, dir: string): number {
  let newest = 0;
  for (const d of [join(bpfDir, dir), join(bpfDir, 'include')]) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) {
      if (/\.(c|h)$/.test(f)) newest = Math.max(newest, statSync(join(d, f)).mtimeMs);
    }
  }
  return newest;
}

const INCLUDES_VMLINUX = /^\s*#\s*include\s*["<]vmlinux\.h[">]/m;

/**
 * True when `src` is a CO-RE program (it includes "vmlinux.h") whose
 * build/vmlinux.h was not made from the running kernel (the Makefile's
 * stamp build/.vmlinux-<uname -r> is missing): make regenerates it and
 * rebuilds the program.
 */
function vmlinuxStale(bpfDir: string, src: string): boolean {
  if (!INCLUDES_VMLINUX.test(readFileSync(src, 'utf8'))) return false;
  return !existsSync(join(bpfDir, 'build', `.vmlinux-${release()}`)) || !existsSync(join(bpfDir, 'build', 'vmlinux.h'));
}

function haveClang(): boolean {
  return spawnSync('sh', ['-c', 'command -v ${CLANG:-clang}'], { stdio: 'ignore' }).status === 0;
}

const DIAGNOSTIC = /^\S.*?:\d+:(\d+:)? (fatal error|error|warning|note|remark): /;
const IS_ERROR = /^\S.*?:\d+:(\d+:)? (fatal error|error): /;

/**
 * The part of a failed build's output worth showing: every compiler error
 * with its context (the source line, the caret, and the notes that follow
 * it), then the "N errors generated." line; warnings left out. At most
 * `maxLines` lines (then a count of the rest). Output with no compiler error
 * in it (make or a linker failed) is shown by its last `maxLines` lines.
 */
export function buildErrors(output: string, maxLines = 40): string[] {
  const lines = output.replace(/\s+$/, '').split('\n');
  const keep: string[] = [];
  let inError = false;
  for (const l of lines) {
    if (DIAGNOSTIC.test(l)) inError = IS_ERROR.test(l) || (inError && / note: /.test(l));
    else if (/^\d+ errors? generated\.$/.test(l)) { keep.push(l); inError = false; continue; }
    if (inError) keep.push(l);
  }
  if (!keep.some((l) => IS_ERROR.test(l))) return lines.slice(-maxLines);
  if (keep.length <= maxLines) return keep;
  return [...keep.slice(0, maxLines - 1), `... (${keep.length - maxLines + 1} more lines: run the make command to see them all)`];
}

/** Where the lesson sources are (default: the repository's bpf/, for tests: a copy of it). */
export interface BuildOptions {
  bpfDir?: string;
}

/**
 * Returns the path of the object built from bpf/<dir>/<name>.bpf.c,
 * running `make -C bpf <dir>` first when it is missing or stale (older than
 * its sources, or, for a CO-RE program, built against another kernel's
 * vmlinux.h). Throws an
 * Error that says exactly what to run when clang is absent, or that shows
 * the compiler's errors (buildErrors) when the build fails.
 */
export function ensureObject(dir: string, name = dir, opts: BuildOptions = {}): string {
  const bpfDir = opts.bpfDir ?? BPF_DIR;
  const obj = join(bpfDir, 'build', `${name}.bpf.o`);
  const src = join(bpfDir, dir, `${name}.bpf.c`);
  if (!existsSync(src)) throw new Error(`find BPF source ${src}: no such file`);
  const fresh = existsSync(obj) && statSync(obj).mtimeMs >= newestSource(bpfDir, dir) && !vmlinuxStale(bpfDir, src);
  if (fresh) return obj;
  const make = bpfDir === BPF_DIR ? makeCommand(dir) : `make -C ${bpfDir} ${dir}`;
  if (!haveClang()) {
    throw new Error(`build ${obj}: clang is not installed; run: apt-get install clang llvm libbpf-dev && ${make}`);
  }
  try {
    execFileSync('make', ['-s', '-C', bpfDir, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const stderr = String((e as { stderr?: Buffer }).stderr ?? '');
    throw new Error(`build ${obj}: ${make} failed:\n${buildErrors(stderr).join('\n')}`);
  }
  return obj;
}
