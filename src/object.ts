/**
 * A BPF object file (clang's .bpf.o): open, configure, load, then find its
 * programs and maps. close() releases everything, and is safe to call twice.
 */
import { statSync } from 'node:fs';
import { basename } from 'node:path';
import { bpf, viewOf, type MapPtr, type ObjPtr } from './ffi/libbpf.js';
import { btfDatasecVars, btfShape, mapBtfTypeIds, objectBtfBytes } from './ffi/btf.js';
import { bpfl, objectOpenOpts } from './ffi/loading.js';
import { ensureBpffs } from './bpffs.js';
import { elementAt, parseVarPath, writeValue, type GlobalValue } from './varset.js';
import { lastErrno } from './ffi/native.js';
import { closeFd, isRoot } from './ffi/sys.js';
import { takeLibbpfWarnings } from './ffi/log.js';
import { BpfError, Errno, NEEDS_PRIVILEGE, VerifierError, bpfCallError } from './errors.js';
import { errnoMessage } from './ffi/errno.js';
import { Program } from './program.js';
import { progTypeName } from './kinds.js';
import { probeBpfLsm } from './features.js';
import { BpfMap, PerCpuMap, mapInfoByFd, mapTypeName } from './map.js';
import type { Codec } from './codec.js';
import { Btf } from './btf/btf.js';
import type { BtfValue } from './btf/codec.js';
import { mapCodecs } from './btf/maps.js';
import { openGlobals, openMappedArray, type Globals, type MappedArray } from './btf/globals.js';

/** Options of BpfObject.open(). */
export interface OpenOptions {
  /** Verifier log level requested for every program (0: only on failure, the default; 1: basic; 2: verbose). */
  logLevel?: number;
  /** Size of each program's verifier log buffer (default 1 MiB). */
  logSize?: number;
  /**
   * Directory where maps declared with `__uint(pinning, LIBBPF_PIN_BY_NAME)`
   * are pinned (as <pinRoot>/<map name>) and reused from at load (default
   * /sys/fs/bpf). It must be on a bpffs: one under /sys/fs/bpf is mounted
   * when missing (as inside `ip netns exec`); elsewhere load() fails with
   * libbpf's "... is not on BPF FS". unpinMaps() removes the pins.
   */
  pinRoot?: string;
}

/** A map of the object pinned (or to be pinned) at load: its name and pin path. */
export interface PinnedMapInfo { name: string; path: string; pinned: boolean }

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
  #btf: Btf | null | undefined;
  #globals: Globals | undefined;
  /** The object's name (the file name without .bpf.o). */
  readonly name: string;
  /** Where it was opened from. */
  readonly source: string;

  private constructor(ptr: ObjPtr, source: string, opts: OpenOptions) {
    this.#ptr = ptr;
    this.source = source;
    this.name = bpf.object_name(ptr);
    for (let p = bpf.object_next_program(ptr, null); p; p = bpf.object_next_program(ptr, p)) {
      const prog = new Program(p, () => this.#ptr !== null, () => this.#loaded);
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
    preparePinRoot(`open object ${path}`, opts.pinRoot);
    takeLibbpfWarnings();
    const ptr = bpfl.object_open_file(path, objectOpenOpts(opts.pinRoot ?? null));
    if (!ptr) throw openError(`open object ${path}`, lastErrno());
    return new BpfObject(ptr, path, opts);
  }

  /** Opens an object from an in-memory ELF image. Throws a BpfError. */
  static openBuffer(elf: Buffer, opts: OpenOptions = {}): BpfObject {
    preparePinRoot('open object from memory', opts.pinRoot);
    takeLibbpfWarnings();
    const ptr = bpfl.object_open_mem(elf, elf.length, objectOpenOpts(opts.pinRoot ?? null));
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
   * Sets a `const volatile` global of the program (in .rodata) before load:
   * setConst('trace_tag', 42), one element of an array with
   * setConst('ports[3]', 8080), a whole array with setConst('ports', [80,
   * 443]) (elements not given keep their value), a char array with a string
   * (setConst('label', 'eth0')), or any variable with its exact bytes
   * (Uint8Array, host order). Values are typed from BTF: one that does not
   * fit (256 into a u8 or a bool, 1.5 into an int, -1 into an unsigned, a
   * string longer than the array) throws a one-line RangeError. Throws a
   * BpfError: ENOENT when there is no such variable, EBUSY after load.
   */
  setConst(name: string, value: GlobalValue): this {
    return this.#setVar(name, value, ['.rodata'], 'const volatile variable in .rodata');
  }

  /**
   * Sets the initial value of a global in .data or .bss (a non-const
   * global) before load, as setConst does for .rodata (same paths, values
   * and RangeErrors). The program can change it after load. Throws a
   * BpfError: ENOENT when there is no such variable (naming setConst when
   * it is a const), EBUSY after load.
   */
  setGlobal(name: string, value: GlobalValue): this {
    return this.#setVar(name, value, ['.data', '.bss'], 'global variable in .data or .bss');
  }

  #setVar(path: string, value: GlobalValue, sections: string[], what: string): this {
    if (this.#loaded) throw new BpfError(`set ${path}`, Errno.EBUSY, 'object is already loaded');
    const op = `set ${path} in ${this.name}`;
    let parsed;
    try { parsed = parseVarPath(path); } catch (e) { throw new RangeError(`${op}: ${(e as Error).message}`); }
    const { name, index } = parsed;
    const btf = bpf.object_btf(this.#p);
    const find = (secs: string[]) => {
      for (const sec of secs) {
        const map = [...this.#maps.entries()].find(([n]) => n.endsWith(sec))?.[1];
        const v = map && btf ? btfDatasecVars(btf, sec).find((x) => x.name === name) : undefined;
        if (map && v) return { sec, map, v };
      }
      return undefined;
    };
    const found = find(sections);
    if (!found) {
      const other = find(sections.includes('.rodata') ? ['.data', '.bss'] : ['.rodata']);
      const hint = other ? ` (${name} is in ${other.sec}: use ${other.sec === '.rodata' ? 'setConst' : 'setGlobal'})` : '';
      throw new BpfError(op, Errno.ENOENT, `no such ${what}${hint}`);
    }
    const size: [number | bigint] = [0];
    const init = bpf.map_initial_value(found.map, size);
    if (!init) throw new BpfError(op, Errno.EINVAL, `${found.sec} has no initial value`);
    const data = Buffer.from(viewOf(init, Number(size[0])).slice(0));
    const shape = btfShape(btf!, found.v.type);
    try {
      const at = elementAt(path, shape.size === found.v.size ? shape : { kind: 'other', size: found.v.size, what: 'variable' }, found.v.offset, index);
      writeValue(path, at.shape, value, data, at.offset);
    } catch (e) {
      throw e instanceof RangeError ? new RangeError(`${op}: ${e.message}`) : e;
    }
    const r = bpf.map_set_initial_value(found.map, data, data.length);
    if (r < 0) throw new BpfError(op, -r);
    return this;
  }

  /** The maps pinned by name (LIBBPF_PIN_BY_NAME) or given a pin path, with their paths; `pinned` once load() pinned or reused them. */
  get pinnedMaps(): PinnedMapInfo[] {
    this.#p;
    const out: PinnedMapInfo[] = [];
    for (const [name, m] of this.#maps) {
      const path = bpfl.map_pin_path(m);
      if (path) out.push({ name, path, pinned: bpfl.map_is_pinned(m) });
    }
    return out;
  }

  /**
   * Removes the pins of this object's pinned maps (what load() pinned or
   * reused), so the maps go away with the last fd. Returns the paths
   * removed. Safe to call twice (and before load: nothing to remove).
   * Throws a BpfError when a pin cannot be removed.
   */
  unpinMaps(): string[] {
    if (!this.#ptr) return [];
    const removed: string[] = [];
    for (const [name, m] of this.#maps) {
      if (!bpfl.map_is_pinned(m)) continue;
      const path = bpfl.map_pin_path(m) ?? '';
      const r = bpfl.map_unpin(m, null);
      if (r < 0 && -r !== Errno.ENOENT) throw new BpfError(`unpin map ${name} at ${path}`, -r);
      if (r >= 0) removed.push(path);
    }
    return removed;
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
      const cause = e === Errno.EPERM ? NEEDS_PRIVILEGE : libbpfCause(warnings) ?? errnoMessage(e);
      const hint = /is not on BPF FS/.test(cause) ? ' (pin maps on a bpffs: a pinRoot under /sys/fs/bpf, or mount -t bpf bpf <dir>)'
        : /parameter mismatch/.test(cause) ? ' (a map of another shape is pinned there: remove the pin, or use another pinRoot)' : '';
      return new BpfError(op, e, `create map ${mapName}: ${cause}${hint}`);
    }
    const progName = named(/^prog '([^']+)': (?:BPF program load failed|failed to load)/);
    const prog = progName === undefined ? undefined : this.#programs.find((p) => p.name === progName);
    if (prog && /^lsm(\.s)?\//.test(prog.section) && !probeBpfLsm()) {
      return new BpfError(op, e, `load program ${prog.name}: the kernel does not run the BPF LSM (no "bpf" in /sys/kernel/security/lsm: CONFIG_BPF_LSM and lsm=...,bpf at boot), which lsm/ programs need`);
    }
    const tracing = prog && /^(fentry|fexit|fmod_ret|fm?entry\.s|fexit\.s|lsm)\//.test(prog.section);
    if (tracing && e === Errno.EPERM && isRoot()) {
      return new BpfError(op, e, `load program ${prog.name}: the kernel refuses fentry/fexit programs (EPERM even as root: no BPF trampoline here, or lockdown)`);
    }
    if (tracing && e === Errno.ESRCH) {
      return new BpfError(op, e, `load program ${prog.name}: the kernel has no function ${prog.section.slice(prog.section.indexOf('/') + 1)} in its BTF to trace`);
    }
    if (e === Errno.EPERM && prog && isRoot()) {
      return new BpfError(op, e, `load program ${prog.name}: the kernel refuses this ${progTypeName(prog.type)} program (section ${prog.section}) with EPERM even as root: a restriction of this kernel (lockdown, or a hook it does not allow); setAutoload(false) loads the rest`);
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
      const cause = libbpfCause(warnings) ?? errnoMessage(e);
      const hint = /missing BPF prog type/.test(cause) ? ': set it with program.setType() before load, or setAutoload(false)' : '';
      return new BpfError(op, e, `load program ${prog.name}: ${cause}${hint}`);
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
   * must match the map's), or without codecs by the object's BTF (plain
   * objects with the C field names, see src/btf/codec.ts). Throws a
   * BpfError or a TypeError.
   */
  map(name: string): BpfMap<BtfValue, BtfValue>;
  map<K, V>(name: string, key: Codec<K>, value: Codec<V>): BpfMap<K, V>;
  map<K, V>(name: string, key?: Codec<K>, value?: Codec<V>): BpfMap<K, V> {
    const src = this.#source(name);
    const c = key === undefined && value === undefined ? this.#btfCodecs(name) : undefined;
    const m = new BpfMap(src, c ? c.key as unknown as Codec<K> : key, c ? c.value as unknown as Codec<V> : value);
    this.#handed.push(m);
    return m;
  }

  /** A per-CPU map, typed by its key and (one CPU's) value codec, or without codecs by the object's BTF. Throws a BpfError or a TypeError. */
  perCpuMap(name: string): PerCpuMap<BtfValue, BtfValue>;
  perCpuMap<K, V>(name: string, key: Codec<K>, value: Codec<V>): PerCpuMap<K, V>;
  perCpuMap<K, V>(name: string, key?: Codec<K>, value?: Codec<V>): PerCpuMap<K, V> {
    const src = this.#source(name);
    const c = key === undefined && value === undefined ? this.#btfCodecs(name) : undefined;
    const m = new PerCpuMap(src, c ? c.key as unknown as Codec<K> : key, c ? c.value as unknown as Codec<V> : value);
    this.#handed.push(m);
    return m;
  }

  #btfCodecs(name: string) {
    const m = this.#map(name);
    const ids = mapBtfTypeIds(m);
    return mapCodecs({ name, keySize: bpf.map_key_size(m), valueSize: bpf.map_value_size(m), btfId: 0, btfKeyTypeId: ids.key, btfValueTypeId: ids.value }, this.btf);
  }

  /** The object's BTF (parsed once), or undefined when it was built without it (clang without -g). Throws a BpfError when closed. */
  get btf(): Btf | undefined {
    if (this.#btf === undefined) {
      const raw = objectBtfBytes(this.#p);
      this.#btf = raw ? Btf.parse(raw) : null;
    }
    return this.#btf ?? undefined;
  }

  /**
   * The global variables of the loaded object, by section without the dot
   * (`obj.globals.bss.packets`, `obj.globals.rodata.verdict`), read and
   * assigned through a memory mapping of each section's map: no syscall per
   * access. .rodata is read-only after load. Kernel >= 5.5 (mmapable
   * arrays). Throws a BpfError before load or when a section cannot be mapped.
   */
  get globals(): Globals {
    if (!this.#loaded) throw new BpfError(`read globals of ${this.name}`, Errno.EINVAL, 'object is not loaded yet');
    if (!this.#globals) {
      const maps = [...this.#maps.entries()].map(([name, m]) => ({ name, fd: bpf.map_fd(m), valueSize: bpf.map_value_size(m), maxEntries: bpf.map_max_entries(m), flags: bpf.map_flags(m) }));
      this.#globals = openGlobals(this.btf, maps, this.name, (u) => this.#handed.push(u));
    }
    return this.#globals;
  }

  /** A BPF_F_MMAPABLE array map, element by element through its mapping, typed by its BTF. Throws a BpfError. */
  mappedArray(name: string): MappedArray {
    const src = this.#source(name);
    const m = this.#map(name);
    const c = this.#btfCodecs(name);
    return openMappedArray({ name, fd: src.fd, valueSize: src.valueSize, maxEntries: src.maxEntries, flags: bpf.map_flags(m) }, c.value, (u) => this.#handed.push(u));
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

/** libbpf's lines that only repeat that something failed, not why. */
const GENERIC = /^(failed to load object|Error in bpf_create_map_xattr|Error loading|permission error while running as root|prog '[^']+': (failed to load|BPF program load failed)|map '[^']+': (failed to create|error reusing pinned map|failed to auto-pin)|-- BEGIN PROG LOAD LOG|-- END PROG LOAD LOG)/;

/**
 * The cause libbpf gave among its warnings: the first line that says why
 * ("couldn't reuse pinned map at '...': parameter mismatch", "missing BPF
 * prog type, check ELF section name 'x'", "specified path ... is not on
 * BPF FS"), without the "prog 'x': " or "map 'x': " prefix the error
 * already names. Undefined when libbpf said nothing more than "failed".
 */
export function libbpfCause(warnings: string[]): string | undefined {
  const line = warnings.find((l) => !GENERIC.test(l) && l.trim() !== '');
  return line?.replace(/^(prog|map) '[^']+': /, '').trim();
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

/** Mounts bpffs at /sys/fs/bpf when the pin root is under it and it is missing. Throws a BpfError when mounting fails. */
function preparePinRoot(op: string, root: string | undefined): void {
  if (root === undefined || !(root === '/sys/fs/bpf' || root.startsWith('/sys/fs/bpf/'))) return;
  try {
    ensureBpffs('/sys/fs/bpf');
  } catch (e) {
    throw new BpfError(op, e instanceof BpfError ? e.errno : Errno.EINVAL, `pin root ${root}: /sys/fs/bpf is not a bpffs and cannot be mounted`);
  }
}
