/**
 * Running a synchronous function in another network namespace: the calling
 * thread enters /run/netns/NAME (setns) and always comes back, even when
 * the function throws. Only the calling thread moves, and the function must
 * not await: everything it does happens on this thread, in that namespace.
 */
import { closeSync, openSync } from 'node:fs';
import { setNetns } from '../ffi/inspect.js';
import { BpfError, Errno } from '../errors.js';

/** The directory where `ip netns add` keeps the named namespaces. */
export const NETNS_RUN_DIR = '/run/netns';

/**
 * Calls `fn` inside network namespace `name` (a name under /run/netns) and
 * returns what it returns. Throws a BpfError: ENOENT for an unknown
 * namespace, EINVAL for a name that is not one, EPERM when not root; and
 * whatever `fn` throws (after coming back).
 */
export function inNetns<T>(name: string, fn: () => T): T {
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name === '.' || name === '..') throw new BpfError(`enter netns '${name}'`, Errno.EINVAL, 'not a namespace name');
  let target: number;
  try {
    target = openSync(`${NETNS_RUN_DIR}/${name}`, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new BpfError(`enter netns ${name}`, Errno.ENOENT, `no network namespace ${name} (${NETNS_RUN_DIR}/${name})`);
    throw new BpfError(`enter netns ${name}`, Errno.EACCES, (e as Error).message);
  }
  let back: number | undefined;
  try {
    back = openSync('/proc/thread-self/ns/net', 'r');
    const e = setNetns(target);
    if (e) throw new BpfError(`enter netns ${name}`, e, e === Errno.EPERM ? 'entering a network namespace needs root (CAP_SYS_ADMIN)' : undefined);
    try {
      return fn();
    } finally {
      const r = setNetns(back);
      // Staying in the wrong namespace would make every later answer wrong: better to die.
      if (r) { process.stderr.write(`fatal: could not return from netns ${name} (errno ${r})\n`); process.exit(70); }
    }
  } finally {
    if (back !== undefined) closeSync(back);
    closeSync(target);
  }
}
