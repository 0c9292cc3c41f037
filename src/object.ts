/**
 * A BPF object file (clang's .bpf.o): open, configure, load, then find its
 * programs and maps. close() releases everything, and is safe to call twice.
 */
import { statSync } from 'node:fs';
import { basename } from 'node:path';
import { bpf, viewOf, type MapPtr, type ObjPtr } from './ffi/libbpf.js';
import { btfDatasecVars } from './ffi/btf.js';
import { lastErrno } from './ffi/native.js';
import { isRoot } from './ffi/sys.js';
import { takeLibbpfWarnings } from './ffi/log.js';
import { BpfError, Errno, NEEDS_PRIVILEGE, VerifierError, bpfCallError } from './errors.js';
import { errnoMessage } from './ffi/errno.js';
import { Program } from './program.js';
import { BpfMap, PerCpuMap, mapInfoByFd, mapTypeName } from './map.js';
import { closeFd } from './ffi/sys.js';
import type { Codec } from './codec.js';

/** Options of BpfObject.open(). */
export interface OpenOptions {
  /** Verifier log level requested for every program (0: only on failure, the default; 1: basic; 2: verbose). */
  logLevel?: number;
  /** Size of each program's verifier log buffer (default 1 MiB). */
  logSize?: number;
}

/** A map of an object, as the object describes it (before or after load). */
export interface ObjectMapInfo { name: string; type: number; typeName: string; keySize: number; valueSize: number; maxEntries: number }

/**
 * A BPF object file: open() (or openBuffer()), configure (setConst,
 * setMaxEntries), load(), then its programs and maps. Needs root (CAP_BPF)
 * to load; any kernel with BPF (features such as ring buffers need newer).
 */
export class BpfObject {
  #ptr: ObjPtr | null;
  #loaded = false;
  readonly #programs: Program[] = [];
  readonly #maps = new Map<string, MapPtr>();
  readonly #handed: Array<{ _invalidate(): void }> = [];
  readonly #logBufs = new Map<Program, Buffer>();
  /** The object's name (the file name without .bpf.o). */
  readonly name: string;
  /** Where it was opened from. */
  readonly source: string;

  private constructor(ptr: ObjPtr, source: string, opts: OpenOptions) {
    this.#ptr = ptr;
    this.source = source;
    this.name = bpf.object_name(ptr);
    for (let p = bpf.object_next_program(ptr, null); p; p = bpf.object_next_program(ptr, p)) {
      const prog = new Program(p, () => this.#ptr !== null);
      this.#programs.push(prog);
      const buf = Buffer.alloc(opts.logSize ?? 1 << 20);
      bpf.program_set_log_buf(p, buf, buf.length);
      if (opts.logLevel) bpf.program_set_log_level(p, opts.logLevel);
      this.#logBufs.set(prog, buf);
    }
    for (let m = bpf.object_next_map(ptr, null); m; m = bpf.object_next_map(ptr, m)) {
      this.#maps.set(bpf.map_name(m), m);
    }
  }

  /** Opens an object file (not loaded yet). Throws a BpfError (ENOENT for a missing file, EINVAL for a bad ELF). */
  static open(path: string, opts: OpenOptions = {}): BpfObject {
    checkObjectPath(`open object ${path}`, path);
    takeLibbpfWarnings();
    const ptr = bpf.object_open_file(path, null);
    if (!ptr) throw openError(`open object ${path}`, lastErrno());
    return new BpfObject(ptr, path, opts);
  }

  /** Opens an object from an in-memory ELF image. Throws a BpfError. */
  static openBuffer(elf: Buffer, opts: OpenOptions = {}): BpfObject {
    takeLibbpfWarnings();
    const ptr = bpf.object_open_mem(elf, elf.length, null);
    if (!ptr) throw openError('open object from memory', lastErrno());
    return new BpfObject(ptr, '<memory>', opts);
  }

  /** Opens and loads an object file. Throws a BpfError or a VerifierError; nothing stays open on failure. */
  static load(path: string, opts: OpenOptions = {}): BpfObject {
    const obj = BpfObject.open(path, opts);
    try {
      return obj.load();
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  get #p(): ObjPtr {
    if (!this.#ptr) throw new BpfError(`use object ${this.name}`, Errno.EBADF, 'object is closed');
    return this.#ptr;
  }

  /** True once load() succeeded. */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** The programs, in ELF order. */
  get programs(): readonly Program[] {
    return this.#programs;
  }

  /** The program called `name`. Throws a BpfError (ENOENT) naming the ones that exist. */
  program(name?: string): Program {
    const p = name === undefined ? this.#programs[0] : this.#programs.find((x) => x.name === name);
    if (!p) throw new BpfError(`find program ${name ?? ''} in ${this.name}`.replace('  ', ' '), Errno.ENOENT, `no such program (have: ${this.#programs.map((x) => x.name).join(', ') || 'none'})`);
    return p;
  }

  /** Every map of the object with its definition. */
  get maps(): ObjectMapInfo[] {
    return [...this.#maps.entries()].map(([name, m]) => {
      const type = bpf.map_type(m);
      return { name, type, typeName: mapTypeName(type), keySize: bpf.map_key_size(m), valueSize: bpf.map_value_size(m), maxEntries: bpf.map_max_entries(m) };
    });
  }

  #map(name: string): MapPtr {
    this.#p;
    const m = this.#maps.get(name);
    if (!m) throw new BpfError(`find map ${name} in ${this.name}`, Errno.ENOENT, `no such map (have: ${[...this.#maps.keys()].join(', ') || 'none'})`);
    return m;
  }

  /** Sets a map's max_entries before load (e.g. a ring buffer's size). Throws a BpfError. */
  setMaxEntries(mapName: string, n: number): this {
    if (this.#loaded) throw new BpfError(`resize map ${mapName}`, Errno.EBUSY, 'object is already loaded');
    const r = bpf.map_set_max_entries(this.#map(mapName), n);
    if (r < 0) throw new BpfError(`resize map ${mapName} to ${n}`, -r);
    return this;
  }

  /**
   * Makes map `mapName` use the map pinned at `path` instead of creating a
   * new one at load (bpf_map__reuse_fd): the state a previous instance left
   * pinned is adopted as it is, entries and size (its max_entries replaces
   * the object's). Returns false, changing nothing, when nothing is pinned
   * there. Throws a BpfError: EBUSY after load, EINVAL when the pinned map's
   * type, key or value size differ from the object's (another layout:
   * adopting it would misread every entry), or the kernel's error.
   */
  reusePinnedMap(mapName: string, path: string): boolean {
    const op = `adopt map ${mapName} from ${path}`;
    if (this.#loaded) throw new BpfError(op, Errno.EBUSY, 'object is already loaded');
    const m = this.#map(mapName);
    const fd = bpf.obj_get(path);
    if (fd < 0) {
      const e = lastErrno();
      if (e === Errno.ENOENT) return false;
      throw new BpfError(op, e);
    }
    try {
      const info = mapInfoByFd(fd, path);
      const want = { type: bpf.map_type(m), keySize: bpf.map_key_size(m), valueSize: bpf.map_value_size(m) };
      if (info.type !== want.type || info.keySize !== want.keySize || info.valueSize !== want.valueSize) {
        throw new BpfError(op, Errno.EINVAL, `the pinned map is a ${info.typeName} of ${info.keySize}-byte keys and ${info.valueSize}-byte values, the object's a ${mapTypeName(want.type)} of ${want.keySize} and ${want.valueSize}: another layout (remove the pin to start afresh)`);
      }
      const r = bpf.map_reuse_fd(m, fd);
      if (r < 0) throw new BpfError(op, -r);
      return true;
    } finally {
      closeFd(fd); // libbpf keeps its own duplicate
    }
  }

  /**
   * Sets a `const volatile` global of the program (in .rodata) before load,
   * e.g. setConst('trace_tag', 42). Numbers are written in host order at the
   * variable's size. Throws a BpfError when there is no such variable.
   */
  setConst(name: string, value: number | bigint | Uint8Array): this {
    if (this.#loaded) throw new BpfError(`set ${name}`, Errno.EBUSY, 'object is already loaded');
    const entry = [...this.#maps.entries()].find(([n]) => n.endsWith('.rodata'));
    const btf = bpf.object_btf(this.#p);
    const v = entry && btf ? btfDatasecVars(btf, '.rodata').find((x) => x.name === name) : undefined;
    if (!entry || !v) throw new BpfError(`set ${name} in ${this.name}`, Errno.ENOENT, 'no such const volatile variable in .rodata');
    const size: [number | bigint] = [0];
    const init = bpf.map_initial_value(entry[1], size);
    if (!init) throw new BpfError(`set ${name} in ${this.name}`, Errno.EINVAL, '.rodata has no initial value');
    const data = Buffer.from(viewOf(init, Number(size[0])).slice(0));
    if (value instanceof Uint8Array) {
      if (value.length !== v.size) throw new RangeError(`${name} is ${v.size} bytes, got ${value.length}`);
      data.set(value, v.offset);
    } else {
      const tmp = Buffer.alloc(8);
      tmp.writeBigUInt64LE(BigInt.asUintN(64, BigInt(value)));
      data.set(tmp.subarray(0, v.size), v.offset);
    }
    const r = bpf.map_set_initial_value(entry[1], data, data.length);
    if (r < 0) throw new BpfError(`set ${name} in ${this.name}`, -r);
    return this;
  }

  /**
   * Loads every program and creates every map. Throws a VerifierError (the
   * program the verifier rejected, with its log) only for a verifier
   * rejection (EACCES/EINVAL with a log); otherwise a BpfError naming the
   * program or map that failed: ENOSPC when a program's verifier log filled
   * its buffer (logSize), EPERM without root/CAP_BPF. Kernel >= 5.2 for
   * log levels above 0 with large programs, any BPF kernel otherwise.
   */
  load(): this {
    if (this.#loaded) return this;
    for (const buf of this.#logBufs.values()) buf[0] = 0;
    takeLibbpfWarnings();
    const r = bpf.object_load(this.#p);
    if (r < 0) throw this.#loadError(-r, takeLibbpfWarnings().map((l) => l.replace(/^libbpf: /, '')));
    this.#loaded = true;
    return this;
  }

  /**
   * The error of a failed load, from its errno and libbpf's warnings, which
   * name the program that failed ("prog 'x': failed to load") or the map
   * that could not be created. Only that program's verifier log is read.
   */
  #loadError(e: number, warnings: string[]): BpfError {
    const op = `load object ${basename(this.source)}`;
    const named = (re: RegExp) => warnings.map((l) => re.exec(l)?.[1]).filter((x) => x !== undefined).pop();
    const mapName = named(/^map '([^']+)': failed to create/);
    if (mapName !== undefined) {
      return new BpfError(op, e, `create map ${mapName}: ${e === Errno.EPERM ? NEEDS_PRIVILEGE : errnoMessage(e)}`);
    }
    const progName = named(/^prog '([^']+)': (?:BPF program load failed|failed to load)/);
    const prog = progName === undefined ? undefined : this.#programs.find((p) => p.name === progName);
    const tracing = prog && /^(fentry|fexit|fmod_ret|fm?entry\.s|fexit\.s|lsm)\//.test(prog.section);
    if (tracing && e === Errno.EPERM && isRoot()) {
      return new BpfError(op, e, `load program ${prog.name}: the kernel refuses fentry/fexit programs (EPERM even as root: no BPF trampoline here, or lockdown)`);
    }
    if (tracing && e === Errno.ESRCH) {
      return new BpfError(op, e, `load program ${prog.name}: the kernel has no function ${prog.section.slice(prog.section.indexOf('/') + 1)} in its BTF to trace`);
    }
    if (e === Errno.EPERM) return new BpfError(op, e, progName ? `load program ${progName}: ${NEEDS_PRIVILEGE}` : NEEDS_PRIVILEGE);
    if (prog) {
      const buf = this.#logBufs.get(prog)!;
      const log = logText(buf);
      const full = log.length >= buf.length - 1;
      if (e === Errno.ENOSPC) {
        return new BpfError(op, e, `load program ${prog.name}: its verifier log filled the ${buf.length}-byte buffer, so the kernel refused the load: raise logSize or lower logLevel`);
      }
      if ((e === Errno.EACCES || e === Errno.EINVAL) && log.trim()) return new VerifierError(op, prog.name, e, log, full);
      return new BpfError(op, e, `load program ${prog.name}: ${errnoMessage(e)}`);
    }
    const rest = warnings.filter((l) => !/^(failed to load object|Error loading|prog '[^']+': failed to load|permission error while running as root)/.test(l));
    return new BpfError(op, e, rest.length ? rest[rest.length - 1] : undefined);
  }

  /** The verifier log of a program (with logLevel > 0, also after a successful load). */
  verifierLog(program: string): string {
    const buf = this.#logBufs.get(this.program(program));
    return buf ? logText(buf) : '';
  }

  #source(name: string) {
    if (!this.#loaded) throw new BpfError(`open map ${name}`, Errno.EINVAL, 'object is not loaded yet');
    const m = this.#map(name);
    return { fd: bpf.map_fd(m), name, owned: false, type: bpf.map_type(m), keySize: bpf.map_key_size(m), valueSize: bpf.map_value_size(m), maxEntries: bpf.map_max_entries(m) };
  }

  /**
   * The map called `name`, typed by its key and value codecs (their sizes
   * must match the map's). Throws a BpfError or a TypeError.
   */
  map<K, V>(name: string, key: Codec<K>, value: Codec<V>): BpfMap<K, V> {
    const m = new BpfMap(this.#source(name), key, value);
    this.#handed.push(m);
    return m;
  }

  /** A per-CPU map, typed by its key and (one CPU's) value codec. Throws a BpfError or a TypeError. */
  perCpuMap<K, V>(name: string, key: Codec<K>, value: Codec<V>): PerCpuMap<K, V> {
    const m = new PerCpuMap(this.#source(name), key, value);
    this.#handed.push(m);
    return m;
  }

  /** The fd of map `name` (for APIs that work on fds, like the ring buffer reader). Throws a BpfError. */
  mapFd(name: string): number {
    return this.#source(name).fd;
  }

  /** Closes the object: unloads programs (unless attached), frees maps. Safe to call twice. */
  close(): void {
    if (!this.#ptr) return;
    const p = this.#ptr;
    this.#ptr = null;
    for (const m of this.#handed) m._invalidate();
    bpf.object_close(p);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** The NUL-terminated text in a log buffer. */
function logText(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.toString('utf8', 0, end < 0 ? buf.length : end);
}

/** Refuses, before libbpf sees it, a path that is not a regular file. */
function checkObjectPath(op: string, path: string): void {
  let st;
  try { st = statSync(path); } catch { return; } // libbpf reports it (ENOENT, EACCES)
  if (st.isDirectory()) throw new BpfError(op, Errno.EISDIR, 'is a directory, not a BPF object file (a .bpf.o built by clang -target bpf)');
}

function openError(op: string, errno: number): BpfError {
  const warn = takeLibbpfWarnings().map((l) => l.replace(/^libbpf: /, ''));
  if (errno === Errno.ENOENT) return new BpfError(op, Errno.ENOENT, 'no such file');
  if (errno === Errno.EPERM) return bpfCallError(op, errno);
  if (errno === Errno.LIBBPF_ERRNO__LIBELF || errno === Errno.LIBBPF_ERRNO__FORMAT) {
    return new BpfError(op, errno, 'not a BPF object file (an ELF .bpf.o built by clang -target bpf)');
  }
  return new BpfError(op, errno || Errno.EINVAL, warn.length ? warn[warn.length - 1] : undefined);
}
