/**
 * cgroup v2 groups: where the unified hierarchy is mounted (found in
 * /proc/mounts: /sys/fs/cgroup on a pure cgroup2 system such as Ubuntu
 * 24.04, /sys/fs/cgroup/unified on a hybrid one such as this Debian 12
 * VM), and a group made, filled with processes and removed. cgroup v1
 * hierarchies take no BPF programs: every BPF hook on cgroups is cgroup2.
 */
import { mkdirSync, readFileSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { BpfError, Errno } from './errors.js';
import { errnoValue } from './ffi/errno.js';

/** The errno of a failed node:fs call. */
function fsErrno(e: unknown): number {
  const code = (e as NodeJS.ErrnoException).code;
  try {
    return code ? errnoValue(code) : Errno.EIO;
  } catch {
    return Errno.EIO;
  }
}

/** Blocks the thread for `ms` (a cgroup emptied by exiting processes needs a moment). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const CGROUP2_SUPER_MAGIC = 0x63677270;

/** True when `path` is a directory of a cgroup v2 hierarchy. */
export function isCgroup2(path: string): boolean {
  try {
    return Number(statfsSync(path).type) === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/** Decodes the octal escapes of a /proc/mounts field ("\040" is a space). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * The mount points of cgroup2 in /proc/mounts (`mounts`: that file's text),
 * in the order listed.
 */
export function cgroup2Mounts(mounts: string = readFileSync('/proc/mounts', 'utf8')): string[] {
  const out: string[] = [];
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f.length >= 3 && f[2] === 'cgroup2') out.push(unescapeMount(f[1]));
  }
  return out;
}

/**
 * Where cgroup2 is mounted: the first cgroup2 mount of /proc/mounts.
 * Throws a BpfError (ENOENT) when there is none, saying how to mount one.
 */
export function cgroup2Root(): string {
  const m = cgroup2Mounts();
  if (m.length === 0) {
    throw new BpfError('find cgroup2', Errno.ENOENT, 'no cgroup2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup/unified)');
  }
  return m[0];
}

/** The cgroup a process is in, in the unified hierarchy: e.g. "/user.slice/...", from /proc/<pid>/cgroup. */
export function cgroupOf(pid: number | 'self' = 'self'): string | undefined {
  const text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  return /^0::(.*)$/m.exec(text)?.[1];
}

/** A cgroup v2 group by its directory. */
export class Cgroup {
  #created: boolean;
  #removed = false;

  private constructor(readonly path: string, created: boolean) {
    this.#created = created;
  }

  /** Whether this object made the directory (remove() then deletes it). */
  get created(): boolean {
    return this.#created;
  }

  /**
   * An existing cgroup2 directory. Throws a BpfError: ENOENT when it does
   * not exist, ENOTDIR when it is not a cgroup2 directory (a cgroup v1
   * hierarchy, or any other directory).
   */
  static open(path: string): Cgroup {
    const p = resolve(path);
    const op = `open cgroup ${p}`;
    try {
      statfsSync(p);
    } catch {
      throw new BpfError(op, Errno.ENOENT, 'no such directory');
    }
    if (!isCgroup2(p)) throw new BpfError(op, Errno.ENOTDIR, `not a cgroup v2 directory (cgroup2 is mounted at ${cgroup2Mounts().join(', ') || 'nothing'})`);
    return new Cgroup(p, false);
  }

  /**
   * Opens the cgroup at `path` (relative paths are under the cgroup2 root),
   * creating it (and its parents) when it does not exist. Throws a
   * BpfError (EACCES/EPERM without root, ENOTDIR outside cgroup2).
   */
  static create(path: string): Cgroup {
    const p = isAbsolute(path) ? path : join(cgroup2Root(), path);
    const op = `create cgroup ${p}`;
    if (!isCgroup2(dirname(p)) && !isCgroup2(p)) {
      // mkdir -p of a deeper path: the closest existing ancestor must be cgroup2.
      let d = dirname(p);
      while (d !== '/' && !isCgroup2(d)) {
        try { statfsSync(d); break; } catch { d = dirname(d); }
      }
      if (!isCgroup2(d)) throw new BpfError(op, Errno.ENOTDIR, `not under a cgroup v2 hierarchy (cgroup2 is mounted at ${cgroup2Mounts().join(', ') || 'nothing'})`);
    }
    let created = false;
    try {
      created = mkdirSync(p, { recursive: true }) !== undefined;
    } catch (e) {
      throw new BpfError(op, fsErrno(e));
    }
    return new Cgroup(p, created);
  }

  /** Moves process `pid` into this cgroup (writes cgroup.procs). Throws a BpfError (ESRCH: no such process). */
  addProcess(pid: number): void {
    try {
      writeFileSync(join(this.path, 'cgroup.procs'), `${pid}\n`);
    } catch (e) {
      throw new BpfError(`move process ${pid} into cgroup ${this.path}`, fsErrno(e));
    }
  }

  /** The pids in this cgroup (not its descendants). */
  processes(): number[] {
    try {
      return readFileSync(join(this.path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  /**
   * Removes the cgroup when this object created it: processes still in it
   * are moved to the parent first (a cgroup with processes cannot be
   * removed). Does nothing for a cgroup it only opened. Safe to call twice.
   * Throws a BpfError when the directory stays (e.g. it has child groups).
   */
  remove(): void {
    if (!this.#created || this.#removed) return;
    const parent = dirname(this.path);
    for (let tries = 0; ; tries++) {
      for (const pid of this.processes()) {
        try { writeFileSync(join(parent, 'cgroup.procs'), `${pid}\n`); } catch { /* exited meanwhile */ }
      }
      try {
        rmdirSync(this.path);
        this.#removed = true;
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') { this.#removed = true; return; }
        // EBUSY: a process moved in (or an exiting one not yet gone): try again.
        if (code !== 'EBUSY' || tries >= 50) throw new BpfError(`remove cgroup ${this.path}`, fsErrno(e));
        pause(20);
      }
    }
  }
}
