/**
 * Vitest global setup: the suite's processes (test workers, the loaders and
 * tools they spawn, tsx's cache and pipes in $TMPDIR/tsx-<uid>) write their
 * temporary files under one directory of their own, removed when the run
 * ends, so a run leaves nothing in /tmp.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'libbpf-ts-test-'));
  // Sticky and world-writable like /tmp: the tests that run as nobody create files here too.
  chmodSync(dir, 0o1777);
  const before = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  return () => {
    if (before === undefined) delete process.env.TMPDIR; else process.env.TMPDIR = before;
    rmSync(dir, { recursive: true, force: true });
  };
}
