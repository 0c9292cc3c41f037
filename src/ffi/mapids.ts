/**
 * Walking every map on the system by id (BPF_MAP_GET_NEXT_ID) and opening
 * one by id (BPF_MAP_GET_FD_BY_ID): what `bpfts map` needs to reach maps
 * that other tools created.
 */
import { func, libbpf } from './native.js';
import { Errno } from './errno.js';

const getNextId = func<(start: number, next: Uint32Array) => number>(libbpf, 'int bpf_map_get_next_id(uint32_t start_id, uint32_t *next_id)');
const getFdById = func<(id: number) => number>(libbpf, 'int bpf_map_get_fd_by_id(uint32_t id)');

/** The ids of every map on the system, ascending (needs CAP_SYS_ADMIN). Returns the errno when the kernel refuses the first step. */
export function mapIds(): number[] | { errno: number } {
  const next = new Uint32Array(1);
  const out: number[] = [];
  for (let id = 0; ;) {
    const r = getNextId(id, next);
    if (r < 0) {
      if (-r === Errno.ENOENT /* no more */ || out.length > 0) return out;
      return { errno: -r };
    }
    id = next[0];
    out.push(id);
  }
}

/** An fd of the map with this id, or -errno (ENOENT: no such map; EPERM: not root). */
export function mapFdById(id: number): number {
  return getFdById(id);
}
