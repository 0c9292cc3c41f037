/** The maps in the kernel, whoever created them (as `bpftool map list` shows them). Needs root. */
import { closeFd, fdById, nextId } from '../ffi/inspect.js';
import { Errno, bpfCallError } from '../errors.js';
import { mapInfoByFd, type MapInfoView } from '../map.js';

/**
 * Every map in the kernel, by id (maps freed while it walks are skipped).
 * Throws a BpfError (EPERM) when not root.
 */
export function listMaps(): MapInfoView[] {
  const out: MapInfoView[] = [];
  for (let id = 0; ;) {
    const n = nextId('map', id);
    if (n === -Errno.ENOENT) break;
    if (n < 0) throw bpfCallError('list maps', -n);
    id = n;
    const fd = fdById('map', id);
    if (fd === -Errno.ENOENT) continue;
    if (fd < 0) throw bpfCallError('list maps', -fd);
    try {
      out.push(mapInfoByFd(fd, `id ${id}`));
    } finally {
      closeFd(fd);
    }
  }
  return out;
}
