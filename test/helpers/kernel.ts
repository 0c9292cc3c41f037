/**
 * Gating of kernel tests: they need root. Under CI=true they must run, so a
 * missing privilege fails the suite instead of skipping it.
 */
import { mkdirSync, rmdirSync, statSync } from 'node:fs';
import { isRoot } from '../../src/ffi/sys.js';

const ci = process.env.CI === 'true' || process.env.CI === '1';

/**
 * True when kernel tests can run. Throws under CI when they cannot (not root),
 * so `describe.skipIf(!kernelTests())` never silently skips in CI.
 */
export function kernelTests(): boolean {
  if (isRoot()) return true;
  if (ci) throw new Error('kernel tests must run under CI=true, but this is not root');
  return false;
}

const LOCK = '/tmp/libbpf-ts-trace.lock';

/**
 * Runs fn while holding a machine-wide lock on trace_pipe: trace_pipe hands
 * each line to one reader, so tests that read it must not overlap.
 */
export async function withTraceLock<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      // A lock older than 2 minutes was left by a crashed run.
      try { if (Date.now() - statSync(LOCK).mtimeMs > 120_000) rmdirSync(LOCK); } catch { /* gone */ }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${LOCK}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    try { rmdirSync(LOCK); } catch { /* gone */ }
  }
}
