/**
 * cgroup programs: attached to a cgroup v2 directory through a bpf_link
 * (bpf_program__attach_cgroup: BPF_LINK_CREATE with the attach type libbpf
 * read from the section, e.g. cgroup/connect4 -> cgroup_inet4_connect).
 * The program then runs for the processes of that cgroup and of every
 * cgroup below it, and for no other. A link attaches alongside the programs
 * other tools put on the same cgroup and hook (the kernel's multi-attach),
 * never in their place, and goes away with the last fd to it: a process that
 * dies, even by SIGKILL, leaves nothing attached. Needs Linux >= 5.7 (cgroup
 * bpf_links).
 */
import { closeSync, constants, openSync } from 'node:fs';
import { resolve } from 'node:path';
import { BpfError, Errno, NEEDS_PRIVILEGE } from '../errors.js';
import { bpf, type ProgPtr } from '../ffi/libbpf.js';
import { programAttachCgroup } from '../ffi/cgroup.js';
import { lastErrno } from '../ffi/native.js';
import { takeLibbpfWarnings } from '../ffi/log.js';
import { attachTypeName, progTypeName } from '../kinds.js';
import { bpfl } from '../ffi/loading.js';
import { errnoValue } from '../ffi/errno.js';
import { Link } from '../link.js';
import { cgroup2Mounts, isCgroup2 } from '../cgroup.js';

/** Program types that attach to cgroups (enum bpf_prog_type), by number. */
const CGROUP_PROG_TYPES = new Set([
  8, /* cgroup_skb */ 9, /* cgroup_sock */ 13, /* sock_ops */ 15, /* cgroup_device */
  18, /* cgroup_sock_addr */ 23, /* cgroup_sysctl */ 25, /* cgroup_sockopt */ 29, /* lsm (lsm_cgroup) */
]);

/** What attaching to a cgroup needs of a program (a Program's internals). */
export interface CgroupProgram {
  readonly ptr: ProgPtr;
  readonly name: string;
  readonly type: number;
}

/**
 * Attaches a cgroup program (cgroup/connect4, cgroup/sock_create,
 * cgroup_skb/ingress, sockops, ...) to the cgroup v2 directory `path`
 * through a bpf_link. Throws a BpfError in one line: EINVAL for a program
 * that is not a cgroup program ("xdp program cannot attach to cgroup
 * PATH"), ENOENT for a missing directory, ENOTDIR for one outside cgroup2
 * (naming where cgroup2 is mounted), EPERM without privileges, or the
 * kernel's refusal.
 */
export function attachCgroup(prog: CgroupProgram, path: string): Link {
  const dir = resolve(path);
  const op = `attach ${prog.name}`;
  if (!CGROUP_PROG_TYPES.has(prog.type)) {
    throw new BpfError(op, Errno.EINVAL, `${progTypeName(prog.type)} program cannot attach to cgroup ${dir} (cgroup programs: cgroup_skb, cgroup_sock, cgroup_sock_addr, sock_ops, cgroup_device, cgroup_sysctl, cgroup_sockopt)`);
  }
  const hook = attachTypeName(bpfl.program_expected_attach_type(prog.ptr));
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    const errno = errnoValue(code);
    throw new BpfError(`${op} to cgroup ${dir}`, errno, errno === Errno.ENOENT ? 'no such directory' : undefined);
  }
  try {
    if (!isCgroup2(dir)) {
      throw new BpfError(`${op} to cgroup ${dir}`, Errno.ENOTDIR, `not a cgroup v2 directory (cgroup v1 hierarchies take no BPF programs; cgroup2 is mounted at ${cgroup2Mounts().join(', ') || 'nothing'})`);
    }
    const ptr = programAttachCgroup(prog.ptr, fd);
    const errno = lastErrno();
    if (!ptr) {
      takeLibbpfWarnings();
      const e = errno || Errno.EINVAL;
      const cause = e === Errno.EPERM ? NEEDS_PRIVILEGE
        : e === Errno.EINVAL ? `the kernel refuses ${hook} links on a cgroup (Linux >= 5.7 has cgroup bpf_links)` : undefined;
      throw new BpfError(`${op} to cgroup ${dir} (${hook})`, e, cause);
    }
    let destroyed = false;
    return new Link(bpf.link_fd(ptr), `${hook} ${prog.name} on cgroup ${dir}`, undefined, () => {
      if (destroyed) return;
      destroyed = true;
      bpf.link_destroy(ptr);
    });
  } finally {
    closeSync(fd); // the link holds the cgroup
  }
}
