/**
 * Where a loader pins the maps that other processes edit while it runs (a
 * service table, a blocklist): one directory per loader on bpffs,
 * `/sys/fs/bpf/libbpf-ts/<lesson>/<iface>-<netns inode>`, so loaders on the
 * same interface name in different network namespaces don't collide.
 *
 * LessonPins does for every lesson what each one needs: the default
 * directory, finding the running loader's directory (with a one-line error
 * that says where to look), pinning (taking over the pins of a loader that
 * died, refusing those of a live one), and removing the pins and every
 * directory it leaves empty (so nothing stays on the machine).
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isBpffs } from './bpffs.js';
import { BpfError, Errno } from './errors.js';
import { mapInUse, pinnedMapId } from './map.js';

/** The directory under which every lesson's pins live. */
export const PIN_BASE = '/sys/fs/bpf/libbpf-ts';

/** The network namespace's inode number (what tells namespaces apart). Throws when /proc is missing. */
export function netnsInode(): number {
  return statSync('/proc/self/ns/net').ino;
}

/** What LessonPins.pin() needs of a map (BpfMap and PerCpuMap are). */
export interface Pinnable {
  pin(path: string): void;
}

/** Options of LessonPins.find(). */
export interface FindPinsOptions {
  /** This directory, as given (--pin-dir). */
  pinDir?: string;
  /** The default directory of a loader on this interface in this namespace (--iface). */
  iface?: string;
}

/** The pin directories of one lesson's loaders. */
export class LessonPins {
  /** PIN_BASE/<lesson>. */
  readonly root: string;

  /**
   * @param lesson the lesson's name (the directory under PIN_BASE).
   * @param marker the file name of the map whose pin marks a loader's
   *   directory, and whose use by a loaded program says the loader is alive.
   * @param what what the pinned maps are, for messages ("services", "blocklist").
   */
  constructor(readonly lesson: string, readonly marker: string, readonly what: string, base = PIN_BASE) {
    this.root = join(base, lesson);
  }

  /** The default directory of a loader on `ifname` in this network namespace: root/<ifname>-<netns inode>. */
  defaultDir(ifname: string): string {
    return join(this.root, `${ifname}-${netnsInode()}`);
  }

  /** The directories holding the marker pin (of running loaders, or of dead ones not cleaned up). Throws nothing. */
  list(): string[] {
    try {
      return readdirSync(this.root).map((d) => join(this.root, d)).filter((d) => existsSync(join(d, this.marker)));
    } catch {
      return [];
    }
  }

  /**
   * The directory of the running loader: `pinDir` if given, else the
   * default one of `iface` in this network namespace, else the only one
   * under root. Throws a BpfError: ENOENT (no loader; names the directories
   * of loaders on that interface name in other namespaces, or explains that
   * pins are per bpffs), EEXIST (several loaders: pick one).
   */
  find(opts: FindPinsOptions = {}): string {
    const op = `find ${this.lesson} loader`;
    if (opts.pinDir) return opts.pinDir;
    if (opts.iface) {
      const dir = this.defaultDir(opts.iface);
      if (existsSync(join(dir, this.marker))) return dir;
      const others = this.list().filter((d) => d.slice(this.root.length + 1).startsWith(`${opts.iface}-`));
      const where = `no ${this.lesson} loader on ${opts.iface} in this network namespace (nothing pinned at ${dir})`;
      if (others.length) {
        throw new BpfError(op, Errno.ENOENT, `${where}; loaders on ${opts.iface} of other network namespaces pinned ${others.join(', ')}: pass one with --pin-dir, or run this in the loader's namespace (nsenter --net=/run/netns/NS)`);
      }
      throw new BpfError(op, Errno.ENOENT, `${where}; pins are per bpffs and per namespace: a loader in another network namespace pins at ${this.root}/${opts.iface}-<its netns inode>, one started with ip netns exec into a private bpffs invisible from here (ls ${this.root} shows what is pinned)`);
    }
    const dirs = this.list();
    if (dirs.length === 1) return dirs[0];
    if (dirs.length === 0) {
      throw new BpfError(op, Errno.ENOENT, `no ${this.lesson} loader is running (nothing pinned under ${this.root}; a loader started with ip netns exec pins into a private bpffs: start it with nsenter --net=/run/netns/NS, or pass --pin-dir)`);
    }
    throw new BpfError(op, Errno.EEXIST, `several ${this.lesson} loaders are running (${dirs.join(', ')}): pick one with --pin-dir or --iface`);
  }

  /**
   * Checks that a running loader pinned `dir` before another process opens
   * its maps. Throws a BpfError: ENOENT when nothing is pinned there, ESRCH
   * when the loader that pinned it is gone (no loaded program uses the
   * marker map any more).
   */
  assertAlive(dir: string): void {
    const op = `open ${this.what} at ${dir}`;
    const path = join(dir, this.marker);
    if (!existsSync(path)) throw new BpfError(op, Errno.ENOENT, `no ${this.lesson} loader is running (nothing pinned at ${dir})`);
    const id = pinnedMapId(path);
    if (id === undefined || !mapInUse(id)) {
      throw new BpfError(op, Errno.ESRCH, `the ${this.lesson} loader that pinned ${dir} is gone (no program uses its maps); start it again`);
    }
  }

  /**
   * Pins `maps` (file name → map) in `dir`, created if needed (it must be
   * on a bpffs), taking over the pins a loader that died left there. Throws
   * a BpfError: EBUSY when a running loader uses `dir`, EPERM when `dir` is
   * not on bpffs, or the pin's own error (nothing of this call stays pinned).
   * Returns true when it took over the pins of a loader that died.
   */
  pin(dir: string, maps: Readonly<Record<string, Pinnable>>): boolean {
    const op = `pin ${this.what} at ${dir}`;
    const marker = join(dir, this.marker);
    const stale = existsSync(marker);
    if (stale) {
      const id = pinnedMapId(marker);
      if (id !== undefined && mapInUse(id)) {
        throw new BpfError(op, Errno.EBUSY, `another ${this.lesson} loader is using ${dir} (use --pin-dir to pick another directory)`);
      }
      for (const name of Object.keys(maps)) { try { unlinkSync(join(dir, name)); } catch { /* not there */ } }
    }
    const made = mkdirSync(dir, { recursive: true });
    if (!isBpffs(dir)) {
      if (made) { try { rmSync(made, { recursive: true }); } catch { /* leave it */ } }
      throw new BpfError(op, Errno.EPERM, `${dir} is not on a bpffs`);
    }
    const pinned: string[] = [];
    try {
      for (const [name, m] of Object.entries(maps)) {
        m.pin(join(dir, name));
        pinned.push(join(dir, name));
      }
    } catch (e) {
      for (const p of pinned) { try { unlinkSync(p); } catch { /* gone */ } }
      this.removeEmpty(dir);
      throw e;
    }
    return stale;
  }

  /**
   * Removes the pins `names` from `dir`, then `dir`, the lesson's root and
   * PIN_BASE when that leaves them empty. Throws nothing; safe to call twice.
   */
  unpin(dir: string, names: readonly string[]): void {
    for (const name of names) { try { unlinkSync(join(dir, name)); } catch { /* gone */ } }
    this.removeEmpty(dir);
  }

  /** Removes `dir` if empty, then its parents up to PIN_BASE (included) while they are empty. */
  private removeEmpty(dir: string): void {
    const base = dirname(this.root);
    for (let d = dir; ; d = dirname(d)) {
      try {
        rmdirSync(d);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return; // not empty (or not ours to remove)
      }
      if (d === base || !dirname(d).startsWith(base)) return;
    }
  }
}
