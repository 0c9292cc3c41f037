/**
 * The programs loaded in the kernel, whoever loaded them (as `bpftool prog`
 * lists them): id, type, name, tag, load time, the maps they use. Needs
 * root (CAP_SYS_ADMIN: the kernel hands out fds by id only to it).
 */
import { bpfFdKind, closeFd, fdById, fdOfPin, nextId, objInfo, boottimeNs } from '../ffi/inspect.js';
import { BpfError, Errno, bpfCallError } from '../errors.js';
import { progTypeName } from './names.js';

/** What the kernel says of a loaded program. */
export interface ProgramInfo {
  id: number;
  /** The type by bpftool's name ("xdp", "sched_cls", "tracepoint"). */
  type: string;
  /** The type's kernel number. */
  typeNumber: number;
  /** The name (the kernel keeps 15 characters). */
  name: string;
  /** The tag: a hash of the instructions, 16 hex digits. */
  tag: string;
  /** When it was loaded, wall-clock time (from load_time, ns since boot). */
  loadedAt: Date;
  /** uid of the process that loaded it. */
  uid: number;
  /** ids of the maps it uses. */
  mapIds: number[];
  /** Size of the translated (verified) program, bytes. */
  xlatedBytes: number;
  /** Size of the JITed code, bytes (0 when not JITed). */
  jitedBytes: number;
  /** BTF object id (0: none). */
  btfId: number;
}

const INFO_SIZE = 232; // struct bpf_prog_info up to attach_btf_id (kernel 6.x); the kernel fills what it knows
const MAX_MAPS = 256;

let bootOffsetMs: number | undefined;
/** ms since the epoch at boot (CLOCK_REALTIME - CLOCK_BOOTTIME), read once. */
function bootEpochMs(): number {
  bootOffsetMs ??= Date.now() - Number(boottimeNs() / 1_000_000n);
  return bootOffsetMs;
}

/**
 * Reads a program's info through an fd of it. Throws a BpfError (EBADF: not
 * a program fd; EINVAL: an fd of another kind of object).
 */
export function programInfoByFd(fd: number, what = `fd ${fd}`): ProgramInfo {
  if (bpfFdKind(fd) !== 'prog') throw new BpfError(`get info of program ${what}`, Errno.EINVAL, 'not a program');
  const info = Buffer.alloc(INFO_SIZE);
  const { r, scratch } = objInfo(fd, info, [4 * MAX_MAPS], ([maps]) => {
    info.writeUInt32LE(MAX_MAPS, 52);
    info.writeBigUInt64LE(maps, 56);
  });
  if (r < 0) throw bpfCallError(`get info of program ${what}`, -r);
  const nMaps = Math.min(MAX_MAPS, info.readUInt32LE(52));
  const mapIds: number[] = [];
  for (let i = 0; i < nMaps; i++) mapIds.push(scratch[0].readUInt32LE(4 * i));
  const typeNumber = info.readUInt32LE(0);
  const nameEnd = info.indexOf(0, 64);
  return {
    id: info.readUInt32LE(4),
    type: progTypeName(typeNumber),
    typeNumber,
    name: info.toString('utf8', 64, nameEnd >= 64 && nameEnd < 80 ? nameEnd : 80),
    tag: info.subarray(8, 16).toString('hex'),
    loadedAt: new Date(bootEpochMs() + Number(info.readBigUInt64LE(40) / 1_000_000n)),
    uid: info.readUInt32LE(48),
    mapIds,
    xlatedBytes: info.readUInt32LE(20),
    jitedBytes: info.readUInt32LE(16),
    btfId: info.readUInt32LE(128),
  };
}

/**
 * The program with this id. Throws a BpfError: ENOENT when there is none,
 * EPERM when not root.
 */
export function programById(id: number): ProgramInfo {
  const fd = fdById('prog', id);
  if (fd < 0) throw bpfCallError(`show prog id ${id}`, -fd, -fd === Errno.ENOENT ? `no program with id ${id}` : undefined);
  try {
    return programInfoByFd(fd, `id ${id}`);
  } finally {
    closeFd(fd);
  }
}

/**
 * Every program loaded in the kernel, by id. Programs unloaded while it
 * walks are skipped. Throws a BpfError (EPERM) when not root.
 */
export function listPrograms(): ProgramInfo[] {
  const out: ProgramInfo[] = [];
  for (let id = 0; ;) {
    const n = nextId('prog', id);
    if (n === -Errno.ENOENT) break;
    if (n < 0) throw bpfCallError('list progs', -n);
    id = n;
    const fd = fdById('prog', id);
    if (fd === -Errno.ENOENT) continue; // unloaded meanwhile
    if (fd < 0) throw bpfCallError('list progs', -fd);
    try {
      out.push(programInfoByFd(fd, `id ${id}`));
    } finally {
      closeFd(fd);
    }
  }
  return out;
}

/**
 * Finds programs by `spec`: an id ("42" or "id:42"), a pinned path (an
 * absolute path on bpffs), or a name (every program of that name, as
 * bpftool does). Throws a BpfError: ENOENT when nothing matches (the
 * message names what was looked for), EINVAL for a malformed id.
 */
export function findPrograms(spec: string): ProgramInfo[] {
  const idText = /^id:/.test(spec) ? spec.slice(3) : /^\d+$/.test(spec) ? spec : undefined;
  if (idText !== undefined) {
    if (!/^\d+$/.test(idText) || Number(idText) <= 0 || Number(idText) > 0xffffffff) throw new BpfError(`show prog ${spec}`, Errno.EINVAL, `'${idText}' is not a program id`);
    return [programById(Number(idText))];
  }
  if (spec.startsWith('/') || spec.startsWith('pinned:')) {
    const path = spec.replace(/^pinned:/, '');
    const fd = fdOfPin(path);
    if (fd < 0) throw bpfCallError(`show prog ${path}`, -fd, -fd === Errno.ENOENT ? 'nothing pinned there' : undefined);
    try {
      return [programInfoByFd(fd, path)];
    } catch (e) {
      if (e instanceof BpfError && e.errno === Errno.EINVAL) throw new BpfError(`show prog ${path}`, Errno.EINVAL, 'what is pinned there is not a program');
      throw e;
    } finally {
      closeFd(fd);
    }
  }
  const name = spec.replace(/^name:/, '');
  const found = listPrograms().filter((p) => p.name === name || (name.length > 15 && p.name === name.slice(0, 15)));
  if (found.length === 0) throw new BpfError(`show prog ${name}`, Errno.ENOENT, 'no program of that name is loaded');
  return found;
}
