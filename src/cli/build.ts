/**
 * Finding a lesson's BPF object, rebuilding it when it is missing or older
 * than its sources.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root directory. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** bpf/ */
export const BPF_DIR = join(REPO_ROOT, 'bpf');

/** The path of bpf/build/<name>.bpf.o (not checked). */
export function objectPath(name: string): string {
  return join(BPF_DIR, 'build', `${name}.bpf.o`);
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const d of [join(BPF_DIR, dir), join(BPF_DIR, 'include')]) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) {
      if (/\.(c|h)$/.test(f)) newest = Math.max(newest, statSync(join(d, f)).mtimeMs);
    }
  }
  return newest;
}

function haveClang(): boolean {
  return spawnSync('sh', ['-c', 'command -v ${CLANG:-clang}'], { stdio: 'ignore' }).status === 0;
}

/**
 * Returns the path of the object built from bpf/<dir>/<name>.bpf.c,
 * running `make -C bpf <dir>` first when it is missing or stale. Throws an
 * Error that says exactly what to run when clang is absent or the build fails.
 */
export function ensureObject(dir: string, name = dir): string {
  const obj = objectPath(name);
  const src = join(BPF_DIR, dir, `${name}.bpf.c`);
  if (!existsSync(src)) throw new Error(`find BPF source ${src}: no such file`);
  const fresh = existsSync(obj) && statSync(obj).mtimeMs >= newestSource(dir);
  if (fresh) return obj;
  if (!haveClang()) {
    throw new Error(`build ${obj}: clang is not installed; run: apt-get install clang llvm libbpf-dev && make -C bpf ${dir}`);
  }
  try {
    execFileSync('make', ['-s', '-C', BPF_DIR, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const stderr = String((e as { stderr?: Buffer }).stderr ?? '').trim().split('\n').slice(-5).join('\n');
    throw new Error(`build ${obj}: make -C bpf ${dir} failed:\n${stderr}`);
  }
  return obj;
}
