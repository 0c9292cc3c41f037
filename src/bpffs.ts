/** bpffs: where pinned maps, programs and links live. */
import { isBpffs, mountFs } from './ffi/sys.js';
import { BpfError } from './errors.js';

export { isBpffs };

/**
 * Makes sure /sys/fs/bpf is a bpffs, mounting one when it is not (as inside
 * `ip netns exec`, which gives a fresh /sys). Returns true when it mounted
 * one. Throws a BpfError when mounting fails.
 */
export function ensureBpffs(root = '/sys/fs/bpf'): boolean {
  if (isBpffs(root)) return false;
  const e = mountFs('bpf', root);
  if (e !== 0) throw new BpfError(`mount bpffs at ${root}`, e);
  return true;
}
