/**
 * Benchmark harness pieces: the row format every figure reports, timing, and
 * building the small C programs that measure the same work through libbpf.
 * Benchmarks are not tests: they measure and print, side by side in one run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../src/cli/build.js';

/** One measured figure. `ts` and `c` are in `unit`; `ratio` compares them as the goal states. */
export interface BenchRow {
  /** Which bench module it came from. */
  group: string;
  figure: string;
  unit: string;
  ts?: number;
  c?: number;
  /** The ratio the goal is about (e.g. TS/C time, or batch speed-up). */
  ratio?: number;
  /** The goal as text, e.g. "TS/C <= 1.15". */
  goal?: string;
  /** Whether the goal was met (undefined when there is no goal). */
  pass?: boolean;
  note?: string;
}

/** Options every bench module gets. */
export interface BenchOptions {
  /** Fewer iterations, for a smoke run. */
  quick: boolean;
}

/** A module of figures: bench/<name>.bench.ts default-exports one. */
export interface BenchModule {
  name: string;
  run(opts: BenchOptions): Promise<BenchRow[]>;
}

/** Nanoseconds since an arbitrary origin. */
export function now(): bigint {
  return process.hrtime.bigint();
}

/** Runs fn `iters` times and returns ns per iteration (best of `rounds`). */
export function nsPerOp(iters: number, fn: () => void, rounds = 3): number {
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = now();
    for (let i = 0; i < iters; i++) fn();
    const ns = Number(now() - t0) / iters;
    best = Math.min(best, ns);
  }
  return best;
}

const C_DIR = join(REPO_ROOT, 'bench', 'c');
const C_BUILD = join(REPO_ROOT, 'bench', 'build');

/**
 * Builds bench/c/<name>.c into bench/build/<name> (or, with `shared`, the
 * shared library bench/build/lib<name>.so) with gcc -O2 against the system
 * libbpf, when missing or stale, and returns its path. Throws when gcc fails.
 */
export function buildC(name: string, { shared = false } = {}): string {
  const src = join(C_DIR, `${name}.c`);
  const bin = join(C_BUILD, shared ? `lib${name}.so` : name);
  mkdirSync(C_BUILD, { recursive: true });
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    execFileSync('gcc', ['-O2', '-Wall', ...(shared ? ['-shared', '-fPIC'] : []), '-o', bin, src, '-lbpf'], { stdio: 'inherit' });
  }
  return bin;
}

/** Runs a C bench binary and parses the JSON object it prints on stdout. */
export function runC<T>(bin: string, args: string[]): T {
  const out = execFileSync(bin, args, { encoding: 'utf8' });
  return JSON.parse(out) as T;
}
