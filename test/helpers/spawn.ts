/** Running a loader as a subprocess, the way a user does. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../../src/cli/build.js';

/** A running loader with its collected output. */
export interface LoaderRun {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when stderr contains `text` (rejects after timeoutMs or if the loader exits first). */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code (or the signal name) once the loader exits. */
  exited: Promise<number | string>;
}

/** Starts `tsx src/loaders/<lesson>.ts ...args`, optionally through a prefix (e.g. nsenter). */
export function startLoader(lesson: string, args: string[], prefix: string[] = []): LoaderRun {
  // node with tsx's loader, not the tsx wrapper: one process, so signals reach the loader itself.
  const cmd = [...prefix, process.execPath, '--import', 'tsx', join(REPO_ROOT, 'src', 'loaders', `${lesson}.ts`), ...args];
  const child = spawn(cmd[0], cmd.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => { out += String(d); });
  child.stderr!.on('data', (d) => { err += String(d); });
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(text, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const t0 = Date.now();
        const tick = () => {
          if (err.includes(text)) return resolve();
          if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`loader exited before '${text}': ${err}`));
          if (Date.now() - t0 > timeoutMs) return reject(new Error(`timed out waiting for '${text}': ${err}`));
          setTimeout(tick, 50);
        };
        tick();
      });
    },
  };
}

/** Polls `fn` until it returns true or `timeoutMs` passes; returns the last result. */
export async function eventually(fn: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const t0 = Date.now();
  for (;;) {
    if (await fn()) return true;
    if (Date.now() - t0 > timeoutMs) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}
