/**
 * BPF maps, typed by a key codec and a value codec: get, set, delete,
 * iteration, batch operations, per-CPU values, info and pinning.
 */
import { bpf } from './ffi/libbpf.js';
import { MapInfo, MapBatchOpts, ProgInfo, sizeOf } from './ffi/structs.js';
import { lastErrno } from './ffi/native.js';
import { allocNative, closeFd, type NativeBuffer } from './ffi/sys.js';
import { mapFdById } from './ffi/mapids.js';
import { BpfError, Errno, bpfCallError } from './errors.js';
import type { Codec } from './codec.js';
import { mapCodecs } from './btf/maps.js';
import type { BtfValue } from './btf/codec.js';

import { MapType, mapTypeName } from './kinds.js';

/** Map types by kernel number (every one linux/bpf.h names; see kinds.ts), and their bpftool names. */
export { MapType, mapTypeName };

const PERCPU_TYPES = new Set<number>([MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE]);

/** True for map types that hold one value per possible CPU (open them as PerCpuMap). */
export function isPerCpuMapType(type: number): boolean {
  return PERCPU_TYPES.has(type);
}

/** How an update treats an existing key. */
export type UpdateFlag = 'any' | 'noexist' | 'exist';
const FLAGS: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };

/** What the kernel says about a map. */
export interface MapInfoView {
  name: string; type: number; typeName: string; id: number;
  keySize: number; valueSize: number; maxEntries: number; flags: number;
  /** The kernel id of the BTF describing key and value (0: none), and their type ids in it. */
  btfId: number; btfKeyTypeId: number; btfValueTypeId: number;
}

/** Where a map's fd came from and who closes it. */
interface MapSource { fd: number; name: string; owned: boolean; type?: number; keySize?: number; valueSize?: number; maxEntries?: number }

/** Number of possible CPUs, which sizes every per-CPU value array. */
export const possibleCpus: number = bpf.num_possible_cpus();

/** Reads a map's info from the kernel. Throws a BpfError. */
export function mapInfoByFd(fd: number, what = `fd ${fd}`): MapInfoView {
  const info: Record<string, unknown> = {};
  const len: [number] = [sizeOf(MapInfo)];
  const r = bpf.map_get_info_by_fd(fd, info, len);
  if (r < 0) throw new BpfError(`get info of map ${what}`, -r);
  const i = info as { name: string; type: number; id: number; key_size: number; value_size: number; max_entries: number; map_flags: number; btf_id: number; btf_key_type_id: number; btf_value_type_id: number };
  return {
    name: i.name, type: i.type, typeName: mapTypeName(i.type), id: i.id, keySize: i.key_size, valueSize: i.value_size, maxEntries: i.max_entries, flags: i.map_flags,
    btfId: i.btf_id, btfKeyTypeId: i.btf_key_type_id, btfValueTypeId: i.btf_value_type_id,
  };
}

const SIZED_CODECS: Record<number, string> = { 1: 'u8', 2: 'u16', 4: 'u32', 8: 'u64' };

function isCodec(c: unknown): c is Codec<unknown> {
  const x = c as Partial<Codec<unknown>> | null | undefined;
  return typeof x === 'object' && x !== null && typeof x.size === 'number' && typeof x.encode === 'function' && typeof x.decode === 'function';
}

/**
 * Throws a one-line TypeError when a key or value codec is missing or is not
 * a Codec, naming the map, the sizes the codecs must have, and the call to make.
 */
function requireCodecs(name: string, call: string, keyCodec: unknown, valueCodec: unknown, keySize: number, valueSize: number): void {
  const bad = [isCodec(keyCodec) ? '' : 'key', isCodec(valueCodec) ? '' : 'value'].filter(Boolean);
  if (bad.length === 0) return;
  const suggest = (n: number) => SIZED_CODECS[n] ?? `struct(...) of ${n} bytes`;
  throw new TypeError(`open map ${name || '(unnamed)'}: no ${bad.join(' and ')} codec given: pass codecs for its ${keySize}-byte key and ${valueSize}-byte value, e.g. ${call}('${name}', ${suggest(keySize)}, ${suggest(valueSize)})`);
}

abstract class MapBase<K, V> {
  /** The map's name. */
  readonly name: string;
  /** The map's type number (see MapType). */
  readonly type: number;
  readonly keySize: number;
  /** Size of one value (for per-CPU maps, of one CPU's value). */
  readonly valueSize: number;
  readonly maxEntries: number;
  protected readonly keyBuf: Buffer;
  protected readonly valBuf: Buffer;
  protected readonly keyAt: number;
  protected readonly valAt: number;
  readonly #keyMem: NativeBuffer;
  readonly #valMem: NativeBuffer;
  protected readonly slot: number;
  #fd: number;
  readonly #owned: boolean;
  /** Converts keys (from BTF when no codec was given). */
  readonly keyCodec: Codec<K>;
  /** Converts values (one CPU's value for per-CPU maps). */
  readonly valueCodec: Codec<V>;

  /**
   * Without codecs (both undefined) the map's BTF gives them (BtfValue
   * objects with the C field names; raw hex where the map has no BTF).
   */
  protected constructor(src: MapSource, keyCodec: Codec<K> | undefined, valueCodec: Codec<V> | undefined, perCpu: boolean) {
    const fromBtf = keyCodec === undefined && valueCodec === undefined;
    const info = src.type === undefined || fromBtf ? mapInfoByFd(src.fd, src.name) : undefined;
    if (fromBtf) {
      const c = mapCodecs({ ...info!, name: src.name || info!.name });
      keyCodec = c.key as unknown as Codec<K>;
      valueCodec = c.value as unknown as Codec<V>;
    }
    this.keyCodec = keyCodec!;
    this.valueCodec = valueCodec!;
    this.#fd = src.fd;
    this.#owned = src.owned;
    this.name = src.name || info?.name || '';
    this.type = src.type ?? info!.type;
    this.keySize = src.keySize ?? info!.keySize;
    this.valueSize = src.valueSize ?? info!.valueSize;
    this.maxEntries = src.maxEntries ?? info!.maxEntries;
    requireCodecs(this.name, perCpu ? 'perCpuMap' : 'map', keyCodec, valueCodec, this.keySize, this.valueSize);
    keyCodec = keyCodec!;
    valueCodec = valueCodec!;
    if (PERCPU_TYPES.has(this.type) !== perCpu) {
      throw new TypeError(`map ${this.name} is a ${mapTypeName(this.type)} map: open it with ${perCpu ? 'map()' : 'perCpuMap()'}`);
    }
    if (keyCodec.size !== this.keySize) throw new TypeError(`map ${this.name}: key codec is ${keyCodec.size} bytes, the map's key is ${this.keySize}`);
    if (valueCodec.size !== this.valueSize) throw new TypeError(`map ${this.name}: value codec is ${valueCodec.size} bytes, the map's value is ${this.valueSize}`);
    this.slot = perCpu ? Math.ceil(this.valueSize / 8) * 8 : this.valueSize;
    // Keys and values of single-element operations live in native memory:
    // passing an address to libbpf costs less than passing a Buffer.
    this.#keyMem = allocNative(this.keySize);
    this.#valMem = allocNative(this.slot * (perCpu ? possibleCpus : 1));
    this.keyBuf = this.#keyMem.buf;
    this.valBuf = this.#valMem.buf;
    this.keyAt = this.#keyMem.at;
    this.valAt = this.#valMem.at;
  }

  /** The map's file descriptor. Throws when the map was closed. */
  get fd(): number {
    if (this.#fd < 0) throw new BpfError(`use map ${this.name}`, Errno.EBADF, 'map is closed');
    return this.#fd;
  }

  /** What the kernel says about this map (id, sizes, flags). Throws a BpfError. */
  info(): MapInfoView {
    return mapInfoByFd(this.fd, this.name);
  }

  /** Throws when the map was closed (its native key/value memory is gone). */
  protected checkOpen(): void {
    if (this.#fd < 0) this.fd;
  }

  protected lookupRaw(key: K): boolean {
    if (this.#fd < 0) this.fd; // throws "map is closed"
    this.keyCodec.encode(key, this.keyBuf, 0);
    const r = bpf.map_lookup_elem_at(this.#fd, this.keyAt, this.valAt);
    if (r === 0) return true;
    if (r === -Errno.ENOENT) return false;
    throw new BpfError(`look up in map ${this.name}`, -r);
  }

  /** True when `key` is in the map. Throws a BpfError. */
  has(key: K): boolean {
    return this.lookupRaw(key);
  }

  /** Deletes `key`; false when it was not there. Throws a BpfError. */
  delete(key: K): boolean {
    this.checkOpen();
    this.keyCodec.encode(key, this.keyBuf, 0);
    const r = bpf.map_delete_elem_at(this.fd, this.keyAt);
    if (r === 0) return true;
    if (r === -Errno.ENOENT) return false;
    throw new BpfError(`delete from map ${this.name}`, -r);
  }

  protected updateRaw(flag: UpdateFlag): void {
    const r = bpf.map_update_elem_at(this.#fd, this.keyAt, this.valAt, FLAGS[flag]);
    if (r === 0) return;
    const e = -r;
    const isArray = this.type === MapType.ARRAY || this.type === MapType.PERCPU_ARRAY;
    const full = isArray ? `index out of range (the array has ${this.maxEntries} entries)` : `map is full (${this.maxEntries} entries)`;
    const detail = e === Errno.EEXIST ? 'key already exists' : e === Errno.ENOENT && flag === 'exist' ? 'no such key' : e === Errno.E2BIG ? full : undefined;
    throw new BpfError(`update map ${this.name}`, e, detail);
  }

  /** Iterates over the keys (BPF_MAP_GET_NEXT_KEY). Throws a BpfError. */
  *keys(): IterableIterator<K> {
    const cur = Buffer.alloc(this.keySize);
    const next = Buffer.alloc(this.keySize);
    let first = true;
    for (;;) {
      const r = bpf.map_get_next_key(this.fd, first ? null : cur, next);
      if (r === -Errno.ENOENT) return;
      if (r < 0) throw new BpfError(`iterate map ${this.name}`, -r);
      first = false;
      next.copy(cur);
      yield this.keyCodec.decode(next, 0);
    }
  }

  /** True when the kernel and libbpf can do batch operations on this map. */
  get supportsBatch(): boolean {
    return this.type !== MapType.RINGBUF && this.type !== MapType.PROG_ARRAY;
  }

  /**
   * Reads every entry with BPF_MAP_LOOKUP_BATCH, `chunk` entries per syscall,
   * calling `onChunk(keys, values, count)` with the raw buffers. Throws a
   * BpfError (EINVAL/ENOTSUPP when the kernel lacks batch ops for this map).
   */
  lookupBatchRaw(onChunk: (keys: Buffer, values: Buffer, count: number) => void, chunk = 4096): void {
    for (const b of this.rawBatches(chunk)) onChunk(b.keys, b.values, b.count);
  }

  /**
   * The raw batches of BPF_MAP_LOOKUP_BATCH, one per syscall: `count` keys of
   * keySize bytes, and their values (per-CPU maps: possibleCpus slots of
   * valueSize rounded up to 8 bytes per key). The buffers are reused by the
   * next batch: read them before asking for it. Throws a BpfError, as
   * lookupBatchRaw.
   */
  *rawBatches(chunk = 4096): Generator<{ keys: Buffer; values: Buffer; count: number }, void, undefined> {
    const vsize = this.valBuf.length;
    let n = chunk;
    let keys = Buffer.alloc(n * this.keySize);
    let values = Buffer.alloc(n * vsize);
    const tokenA = Buffer.alloc(Math.max(8, this.keySize));
    const tokenB = Buffer.alloc(Math.max(8, this.keySize));
    const count = new Uint32Array(1);
    const opts = { sz: sizeOf(MapBatchOpts), elem_flags: 0, flags: 0 };
    let inBatch: Buffer | null = null;
    let outBatch = tokenA;
    for (;;) {
      count[0] = n;
      const r = bpf.map_lookup_batch(this.fd, inBatch, outBatch, keys, values, count, opts);
      const e = r < 0 ? -r : 0;
      if (e === Errno.ENOSPC /* a bucket holds more than n */ && count[0] === 0) {
        n *= 2;
        keys = Buffer.alloc(n * this.keySize);
        values = Buffer.alloc(n * vsize);
        continue;
      }
      if (e !== 0 && e !== Errno.ENOENT) throw new BpfError(`batch lookup in map ${this.name}`, e);
      if (count[0] > 0) yield { keys, values, count: count[0] };
      if (e === Errno.ENOENT) return; // ENOENT: no more entries
      inBatch = outBatch;
      outBatch = outBatch === tokenA ? tokenB : tokenA;
    }
  }

  /** Deletes `keys` with one BPF_MAP_DELETE_BATCH; returns how many were deleted. Throws a BpfError. */
  deleteBatch(keys: K[]): number {
    if (keys.length === 0) return 0;
    const kb = Buffer.alloc(keys.length * this.keySize);
    keys.forEach((k, i) => this.keyCodec.encode(k, kb, i * this.keySize));
    const count = new Uint32Array([keys.length]);
    const r = bpf.map_delete_batch(this.fd, kb, count, { sz: sizeOf(MapBatchOpts), elem_flags: 0, flags: 0 });
    if (r < 0) throw new BpfError(`batch delete from map ${this.name}`, -r);
    return count[0];
  }

  /** Deletes every entry. Throws a BpfError. */
  clear(): void {
    const all = [...this.keys()];
    for (const k of all) this.delete(k);
  }

  /** Pins the map at `path` on a bpffs. Throws a BpfError. */
  pin(path: string): void {
    const r = bpf.obj_pin(this.fd, path);
    if (r < 0) throw new BpfError(`pin map ${this.name} at ${path}`, -r);
  }

  /** Closes the fd when this handle owns it (maps of an object close with it). Safe to call twice. */
  close(): void {
    if (this.#fd >= 0 && this.#owned) closeFd(this.#fd);
    this._invalidate();
  }

  /** @internal the object closed this map's fd. */
  _invalidate(): void {
    this.#fd = -1;
    this.#keyMem.free();
    this.#valMem.free();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** How BpfMap.readAll() read a map: BPF_MAP_LOOKUP_BATCH, or get_next_key + lookup per entry. */
export type ReadMethod = 'batch' | 'iterate';

/** Errnos of a batch lookup that mean "this kernel or map type has no batch operations". */
const NO_BATCH: ReadonlySet<number> = new Set([Errno.EINVAL, Errno.ENOSYS, Errno.EOPNOTSUPP, Errno.ENOTSUPP]);

/** A map with one value per key. */
export class BpfMap<K, V> extends MapBase<K, V> {
  /** @internal use BpfObject.map(), BpfMap.openPinned() or BpfMap.create(). */
  constructor(src: MapSource, keyCodec: Codec<K> | undefined, valueCodec: Codec<V> | undefined) {
    super(src, keyCodec, valueCodec, false);
  }

  /**
   * Opens a map pinned on bpffs; without codecs, typed by its BTF (hex where
   * it has none). Throws a BpfError (ENOENT when nothing is pinned there).
   */
  static openPinned(path: string): BpfMap<BtfValue, BtfValue>;
  static openPinned<K, V>(path: string, keyCodec: Codec<K>, valueCodec: Codec<V>): BpfMap<K, V>;
  static openPinned<K, V>(path: string, keyCodec?: Codec<K>, valueCodec?: Codec<V>): BpfMap<K, V> {
    const fd = bpf.obj_get(path);
    if (fd < 0) throw bpfCallError(`open pinned map ${path}`, -fd || lastErrno());
    try {
      return new BpfMap({ fd, name: '', owned: true }, keyCodec, valueCodec);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  /**
   * Opens the map with kernel id `id` (any map on the system, as `bpftool
   * map show` lists them); without codecs, typed by its BTF. Throws a
   * BpfError (ENOENT: no such map; EPERM: not root) or a TypeError (a
   * per-CPU map: use PerCpuMap.openById).
   */
  static openById(id: number): BpfMap<BtfValue, BtfValue>;
  static openById<K, V>(id: number, keyCodec: Codec<K>, valueCodec: Codec<V>): BpfMap<K, V>;
  static openById<K, V>(id: number, keyCodec?: Codec<K>, valueCodec?: Codec<V>): BpfMap<K, V> {
    const fd = mapFdById(id);
    if (fd < 0) throw bpfCallError(`open map id ${id}`, -fd, -fd === Errno.ENOENT ? 'no such map' : undefined);
    try {
      return new BpfMap({ fd, name: '', owned: true }, keyCodec, valueCodec);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  /** Creates a standalone map (not from an object). Throws a BpfError. */
  static create<K, V>(opts: { type: number; name?: string; maxEntries: number }, keyCodec: Codec<K>, valueCodec: Codec<V>): BpfMap<K, V> {
    if (!isCodec(keyCodec) || !isCodec(valueCodec)) throw new TypeError(`create map ${opts.name ?? ''}: pass a key codec and a value codec (they give the map's key and value sizes)`.replace(' :', ':'));
    const fd = bpf.map_create(opts.type, opts.name ?? null, keyCodec.size, valueCodec.size, opts.maxEntries, null);
    if (fd < 0) throw bpfCallError(`create map ${opts.name ?? ''}`.trim(), -fd);
    return new BpfMap({ fd, name: opts.name ?? '', owned: true }, keyCodec, valueCodec);
  }

  /** The value at `key`, or undefined. Throws a BpfError. */
  get(key: K): V | undefined {
    return this.lookupRaw(key) ? this.valueCodec.decode(this.valBuf, 0) : undefined;
  }

  /** Writes `key` → `value`. 'noexist' fails with EEXIST, 'exist' with ENOENT; a full map gives E2BIG. Throws a BpfError. */
  set(key: K, value: V, flag: UpdateFlag = 'any'): void {
    this.checkOpen();
    this.keyCodec.encode(key, this.keyBuf, 0);
    this.valueCodec.encode(value, this.valBuf, 0);
    this.updateRaw(flag);
  }

  /** Iterates over [key, value] pairs (get_next_key + lookup; entries deleted meanwhile are skipped). Throws a BpfError. */
  *entries(): IterableIterator<[K, V]> {
    for (const k of this.keys()) {
      const v = this.get(k);
      if (v !== undefined) yield [k, v];
    }
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  /** Every entry, read with batch lookups (one syscall per `chunk` entries). Throws a BpfError. */
  lookupBatch(chunk?: number): [K, V][] {
    const out: [K, V][] = [];
    const ks = this.keySize;
    const vs = this.valueSize;
    this.lookupBatchRaw((keys, values, count) => {
      for (let i = 0; i < count; i++) out.push([this.keyCodec.decode(keys, i * ks), this.valueCodec.decode(values, i * vs)]);
    }, chunk);
    return out;
  }

  /**
   * Every entry, and how it was read: with batch lookups (lookupBatch) when
   * `prefer` is 'batch' and the kernel has them for this map, else by key
   * iteration (entries()). Throws a BpfError for any failure other than
   * "no batch operations here" (EINVAL, ENOSYS, EOPNOTSUPP, ENOTSUPP).
   */
  readAll(prefer: ReadMethod = 'batch'): { method: ReadMethod; entries: [K, V][] } {
    if (prefer === 'batch' && this.supportsBatch) {
      try {
        return { method: 'batch', entries: this.lookupBatch() };
      } catch (e) {
        if (!(e instanceof BpfError) || !NO_BATCH.has(e.errno)) throw e;
      }
    }
    return { method: 'iterate', entries: [...this.entries()] };
  }

  /**
   * Iterates over [key, value] pairs read with batch lookups (one syscall per
   * `chunk` entries), decoding one entry at a time: for visiting a big map
   * without holding every entry at once. Throws a BpfError, as lookupBatch.
   */
  *entriesBatched(chunk?: number): IterableIterator<[K, V]> {
    const ks = this.keySize;
    const vs = this.valueSize;
    for (const { keys, values, count } of this.rawBatches(chunk)) {
      for (let i = 0; i < count; i++) yield [this.keyCodec.decode(keys, i * ks), this.valueCodec.decode(values, i * vs)];
    }
  }

  /**
   * Writes many entries with one BPF_MAP_UPDATE_BATCH; returns how many were
   * written. Throws a BpfError: E2BIG when the map fills up, EINVAL for a flag
   * other than 'any' (the kernel's batch update has no per-element
   * noexist/exist: use set() for those).
   */
  updateBatch(entries: Array<readonly [K, V]>, flag: UpdateFlag = 'any'): number {
    if (flag !== 'any') throw new BpfError(`batch update map ${this.name}`, Errno.EINVAL, `the kernel's batch update takes no '${flag}' flag: use set(key, value, '${flag}')`);
    if (entries.length === 0) return 0;
    const kb = Buffer.alloc(entries.length * this.keySize);
    const vb = Buffer.alloc(entries.length * this.valueSize);
    entries.forEach(([k, v], i) => {
      this.keyCodec.encode(k, kb, i * this.keySize);
      this.valueCodec.encode(v, vb, i * this.valueSize);
    });
    const count = new Uint32Array([entries.length]);
    const r = bpf.map_update_batch(this.fd, kb, vb, count, { sz: sizeOf(MapBatchOpts), elem_flags: FLAGS[flag], flags: 0 });
    if (r < 0) throw new BpfError(`batch update map ${this.name}`, -r, -r === Errno.E2BIG ? `map is full (${this.maxEntries} entries)` : undefined);
    return count[0];
  }

  /**
   * Writes `count` entries already encoded back to back in `keys` and
   * `values` (keySize and valueSize bytes each) with one
   * BPF_MAP_UPDATE_BATCH: for callers that build big batches in place
   * instead of as objects. Returns how many were written. Throws a
   * BpfError (E2BIG when the map fills up), a RangeError when the buffers
   * are too small for `count`.
   */
  updateBatchRaw(keys: Buffer, values: Buffer, count: number): number {
    if (count === 0) return 0;
    if (keys.length < count * this.keySize || values.length < count * this.valueSize) throw new RangeError(`batch update map ${this.name}: buffers too small for ${count} entries`);
    const n = new Uint32Array([count]);
    const r = bpf.map_update_batch(this.fd, keys, values, n, { sz: sizeOf(MapBatchOpts), elem_flags: 0, flags: 0 });
    if (r < 0) throw new BpfError(`batch update map ${this.name}`, -r, -r === Errno.E2BIG ? `map is full (${this.maxEntries} entries)` : undefined);
    return n[0];
  }
}

/** A per-CPU map: every key holds one value per possible CPU. */
export class PerCpuMap<K, V> extends MapBase<K, V> {
  /** @internal use BpfObject.perCpuMap(). */
  constructor(src: MapSource, keyCodec: Codec<K> | undefined, valueCodec: Codec<V> | undefined) {
    super(src, keyCodec, valueCodec, true);
  }

  /** Opens the per-CPU map with kernel id `id`; without codecs, typed by its BTF. Throws as BpfMap.openById. */
  static openById(id: number): PerCpuMap<BtfValue, BtfValue>;
  static openById<K, V>(id: number, keyCodec: Codec<K>, valueCodec: Codec<V>): PerCpuMap<K, V>;
  static openById<K, V>(id: number, keyCodec?: Codec<K>, valueCodec?: Codec<V>): PerCpuMap<K, V> {
    const fd = mapFdById(id);
    if (fd < 0) throw bpfCallError(`open map id ${id}`, -fd, -fd === Errno.ENOENT ? 'no such map' : undefined);
    try {
      return new PerCpuMap({ fd, name: '', owned: true }, keyCodec, valueCodec);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  /** Opens a per-CPU map pinned on bpffs; without codecs, typed by its BTF. Throws a BpfError (ENOENT when nothing is pinned there) or a TypeError (not a per-CPU map, codec sizes). */
  static openPinned(path: string): PerCpuMap<BtfValue, BtfValue>;
  static openPinned<K, V>(path: string, keyCodec: Codec<K>, valueCodec: Codec<V>): PerCpuMap<K, V>;
  static openPinned<K, V>(path: string, keyCodec?: Codec<K>, valueCodec?: Codec<V>): PerCpuMap<K, V> {
    const fd = bpf.obj_get(path);
    if (fd < 0) throw bpfCallError(`open pinned map ${path}`, -fd || lastErrno());
    try {
      return new PerCpuMap({ fd, name: '', owned: true }, keyCodec, valueCodec);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  /** Creates a standalone per-CPU map (not from an object): `opts.type` a per-CPU type (PERCPU_HASH, PERCPU_ARRAY, ...). Throws a BpfError, or a TypeError for a type that is not per-CPU. */
  static create<K, V>(opts: { type: number; name?: string; maxEntries: number }, keyCodec: Codec<K>, valueCodec: Codec<V>): PerCpuMap<K, V> {
    if (!isCodec(keyCodec) || !isCodec(valueCodec)) throw new TypeError(`create map ${opts.name ?? ''}: pass a key codec and a value codec (they give the map's key and value sizes)`.replace(' :', ':'));
    if (!PERCPU_TYPES.has(opts.type)) throw new TypeError(`create map ${opts.name ?? ''}: ${mapTypeName(opts.type)} is not a per-CPU type: use BpfMap.create`.replace(' :', ':'));
    const fd = bpf.map_create(opts.type, opts.name ?? null, keyCodec.size, valueCodec.size, opts.maxEntries, null);
    if (fd < 0) throw bpfCallError(`create map ${opts.name ?? ''}`.trim(), -fd);
    try {
      return new PerCpuMap({ fd, name: opts.name ?? '', owned: true }, keyCodec, valueCodec);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  /** The values of `key`, one per possible CPU, or undefined. Throws a BpfError. */
  get(key: K): V[] | undefined {
    if (!this.lookupRaw(key)) return undefined;
    const out: V[] = new Array(possibleCpus);
    for (let i = 0; i < possibleCpus; i++) out[i] = this.valueCodec.decode(this.valBuf, i * this.slot);
    return out;
  }

  /** Sum over CPUs of a numeric value, or 0 when the key is absent. Throws a BpfError. */
  sum(key: K, pick: (v: V) => number = (v) => v as unknown as number): number {
    const vals = this.get(key);
    return vals ? vals.reduce((a, v) => a + pick(v), 0) : 0;
  }

  /**
   * The values of `key` summed over CPUs, or undefined when the key is
   * absent: numbers (and bigints) are added; for struct values, every
   * number or bigint field is added, other fields are CPU 0's. Throws a
   * BpfError.
   */
  summed(key: K): V | undefined {
    const vals = this.get(key);
    return vals && sumPerCpu(vals);
  }

  /**
   * Every [key, value summed over CPUs] pair (see summed()), read with batch
   * lookups (one syscall per `chunk` keys) when the kernel has them for this
   * map, else by key iteration. Throws a BpfError.
   */
  entriesSummed(chunk = 1024): Array<[K, V]> {
    const out: Array<[K, V]> = [];
    if (this.supportsBatch) {
      try {
        const ks = this.keySize;
        const per = this.slot * possibleCpus;
        for (const { keys, values, count } of this.rawBatches(chunk)) {
          for (let i = 0; i < count; i++) {
            const vals: V[] = new Array(possibleCpus);
            for (let c = 0; c < possibleCpus; c++) vals[c] = this.valueCodec.decode(values, i * per + c * this.slot);
            out.push([this.keyCodec.decode(keys, i * ks), sumPerCpu(vals)]);
          }
        }
        return out;
      } catch (e) {
        if (!(e instanceof BpfError) || !NO_BATCH.has(e.errno)) throw e;
        out.length = 0;
      }
    }
    for (const [k, vals] of this.entries()) out.push([k, sumPerCpu(vals)]);
    return out;
  }

  /** Writes one value per possible CPU (an array of possibleCpus values), or the same value to every CPU. Throws a BpfError. */
  set(key: K, values: V | V[], flag: UpdateFlag = 'any'): void {
    this.checkOpen();
    this.keyCodec.encode(key, this.keyBuf, 0);
    this.valBuf.fill(0);
    for (let i = 0; i < possibleCpus; i++) {
      const v = Array.isArray(values) ? values[i] : values;
      if (v === undefined) throw new RangeError(`map ${this.name}: ${possibleCpus} per-CPU values needed, got ${(values as V[]).length}`);
      this.valueCodec.encode(v, this.valBuf, i * this.slot);
    }
    this.updateRaw(flag);
  }

  /** Iterates over [key, values-per-CPU] pairs. Throws a BpfError. */
  *entries(): IterableIterator<[K, V[]]> {
    for (const k of this.keys()) {
      const v = this.get(k);
      if (v !== undefined) yield [k, v];
    }
  }

  [Symbol.iterator](): IterableIterator<[K, V[]]> {
    return this.entries();
  }
}

/**
 * Adds per-CPU values: numbers and bigints are added; for objects, every
 * number or bigint field is added and other fields are taken from the first.
 */
export function sumPerCpu<V>(vals: readonly V[]): V {
  const first = vals[0];
  if (typeof first === 'number') return vals.reduce((a, v) => a + (v as number), 0) as V;
  if (typeof first === 'bigint') return vals.reduce((a, v) => a + (v as bigint), 0n) as V;
  if (first === null || typeof first !== 'object') return first;
  const out = { ...(first as Record<string, unknown>) };
  for (const [f, v0] of Object.entries(out)) {
    if (typeof v0 === 'number') out[f] = vals.reduce((a, v) => a + ((v as Record<string, number>)[f]), 0);
    else if (typeof v0 === 'bigint') out[f] = vals.reduce((a, v) => a + ((v as Record<string, bigint>)[f]), 0n);
  }
  return out as V;
}

export type { MapSource };

/**
 * The id of the map pinned at `path`, or undefined when nothing (or not a
 * map) is pinned there. Throws nothing.
 */
export function pinnedMapId(path: string): number | undefined {
  const fd = bpf.obj_get(path);
  if (fd < 0) return undefined;
  try {
    return mapInfoByFd(fd, path).id;
  } catch {
    return undefined;
  } finally {
    closeFd(fd);
  }
}

/**
 * True when some loaded program uses the map with this id (so whoever
 * loaded it is alive; a pinned map nobody uses is left over). Throws nothing:
 * programs that vanish while it looks are skipped.
 */
export function mapInUse(mapId: number): boolean {
  const max = 64;
  const ids = allocNative(4 * max);
  const view = new Uint32Array(ids.buf.buffer, ids.buf.byteOffset, max);
  const next = new Uint32Array(1);
  try {
    for (let id = 0; bpf.prog_get_next_id(id, next) === 0; ) {
      id = next[0];
      const fd = bpf.prog_get_fd_by_id(id);
      if (fd < 0) continue;
      try {
        const info: Record<string, unknown> = { nr_map_ids: max, map_ids: ids.addr };
        if (bpf.prog_get_info_by_fd(fd, info, [sizeOf(ProgInfo)]) < 0) continue;
        const n = Math.min(max, Number(info.nr_map_ids));
        for (let i = 0; i < n; i++) if (view[i] === mapId) return true;
      } finally {
        closeFd(fd);
      }
    }
    return false;
  } finally {
    ids.free();
  }
}
