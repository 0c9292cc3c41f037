/**
 * Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable
 * Software Network Load Balancer", NSDI'16, section 3.4): the lookup table a
 * service's new flows are spread with. Each backend walks its own
 * permutation of the table's slots (offset and skip from two hashes of a
 * stable key such as "10.244.1.5:8080") and, in turn, claims the next free
 * slot of its walk until the table is full. Removing a backend frees only
 * its slots plus a few percent more; every other slot keeps its backend.
 *
 * Weights (as Katran and Cilium add them): backends take turns in
 * proportion to their weight. Every round each backend adds its weight to
 * a credit; one whose credit reaches the largest weight spends that much and
 * claims a slot. So a weight-3 backend claims about three slots for each
 * slot of a weight-1 one.
 *
 * Deterministic: the same backends (same keys, weights and ids, in any
 * order) give the same table in every run and process.
 */
import { LB_MAGLEV_SIZE } from './layout.js';

/** One backend as the table is built from it. */
export interface MaglevBackend {
  /** What the table's slots hold (the backend's id in backend_map). */
  id: number;
  /** A stable key the backend's permutation is derived from, e.g. "10.244.1.5:8080". */
  key: string;
  /** 1 or more (a backend of weight 0 takes no slot: leave it out, or it is skipped). */
  weight: number;
}

const encoder = new TextEncoder();

/** murmur3's 32-bit finaliser: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A 32-bit hash of `key`'s UTF-8 bytes with `seed` (FNV-1a over the bytes,
 * then murmur3's finaliser for avalanche). Two seeds give two independent
 * hashes. Stable across runs, processes and machines.
 */
export function hashKey(key: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x80) return hashBytes(encoder.encode(key), seed); // not ASCII: hash the UTF-8 bytes
    h = Math.imul(h ^ c, 0x01000193);
  }
  return fmix32(h ^ Math.imul(seed, 0x9e3779b1));
}

function hashBytes(bytes: Uint8Array, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193);
  return fmix32(h ^ Math.imul(seed, 0x9e3779b1));
}

const SEED_OFFSET = 0x4d61676c; // "Magl"
const SEED_SKIP = 0x65764c42; // "evLB"

/** True when n is a prime (trial division; for table sizes). */
export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/**
 * Fills a Maglev lookup table of `size` slots (a prime, LB_MAGLEV_SIZE unless
 * given; at least the number
 * of backends with weight > 0) with backend ids. Backends of weight 0 take no
 * slot; with none left the table is all zeros (0: no backend). The result
 * does not depend on the order of `backends`.
 *
 * Throws a RangeError for a size that is not a prime, more backends than
 * slots, a weight that is not an integer in 0..2^31, an id that is not a
 * u32 other than 0, a key or an id given twice. With `out` (of `size`
 * slots), fills and returns it instead of a new array. Needs no kernel.
 */
export function buildMaglev(backends: readonly MaglevBackend[], size: number = LB_MAGLEV_SIZE, out?: Uint32Array): Uint32Array {
  if (size !== LB_MAGLEV_SIZE && !isPrime(size)) throw new RangeError(`maglev table: size ${size} is not a prime`);
  if (out !== undefined && out.length !== size) throw new RangeError(`maglev table: the output has ${out.length} slots, not ${size}`);
  const seenKeys = new Set<string>();
  const seenIds = new Set<number>();
  let n = 0;
  for (const b of backends) {
    if (!Number.isInteger(b.weight) || b.weight < 0 || b.weight > 0x7fffffff) throw new RangeError(`maglev table: backend ${b.key}: weight ${b.weight} is not an integer in 0..${0x7fffffff}`);
    if (!Number.isInteger(b.id) || b.id < 1 || b.id > 0xffffffff) throw new RangeError(`maglev table: backend ${b.key}: id ${b.id} is not in 1..${0xffffffff}`);
    if (seenKeys.has(b.key)) throw new RangeError(`maglev table: backend ${b.key} is given twice`);
    if (seenIds.has(b.id)) throw new RangeError(`maglev table: backend id ${b.id} is given twice`);
    seenKeys.add(b.key);
    seenIds.add(b.id);
    if (b.weight > 0) n++;
  }
  const table = out ?? new Uint32Array(size);
  table.fill(0);
  if (n === 0) return table;
  if (n > size) throw new RangeError(`maglev table: ${n} backends do not fit in ${size} slots`);
  // A fixed order (by key, then id) so the caller's order does not matter: ties between turns go the same way every time.
  const live = backends.filter((b) => b.weight > 0).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id - b.id));
  const s = scratch(n, size);
  const { ids, next, skip, weight, credit, taken } = s;
  let maxWeight = 0;
  let minWeight = Infinity;
  for (let i = 0; i < n; i++) {
    const b = live[i];
    ids[i] = b.id;
    next[i] = hashKey(b.key, SEED_OFFSET) % size;
    skip[i] = (hashKey(b.key, SEED_SKIP) % (size - 1)) + 1;
    weight[i] = b.weight;
    credit[i] = 0;
    if (b.weight > maxWeight) maxWeight = b.weight;
    if (b.weight < minWeight) minWeight = b.weight;
  }
  taken.fill(0, 0, size);
  if (minWeight === maxWeight) fillEqual(n, size, ids, next, skip, table, taken);
  else fillWeighted(n, size, ids, next, skip, weight, credit, maxWeight, table, taken);
  return table;
}

/** The population loop, every backend taking a turn each round (NSDI'16's Pseudocode 1). */
function fillEqual(n: number, size: number, ids: Uint32Array, next: Int32Array, skip: Int32Array, table: Uint32Array, taken: Uint8Array): void {
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      const step = skip[i];
      let c = next[i];
      while (taken[c] === 1) {
        c += step;
        if (c >= size) c -= size;
      }
      taken[c] = 1;
      table[c] = ids[i];
      c += step;
      next[i] = c >= size ? c - size : c;
      if (++filled === size) return;
    }
  }
}

/** The same with weights: a backend takes a turn when its credit reaches the largest weight. */
function fillWeighted(n: number, size: number, ids: Uint32Array, next: Int32Array, skip: Int32Array, weight: Float64Array, credit: Float64Array, maxWeight: number, table: Uint32Array, taken: Uint8Array): void {
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      const cr = credit[i] + weight[i];
      if (cr < maxWeight) {
        credit[i] = cr;
        continue;
      }
      credit[i] = cr - maxWeight;
      const step = skip[i];
      let c = next[i];
      while (taken[c] === 1) {
        c += step;
        if (c >= size) c -= size;
      }
      taken[c] = 1;
      table[c] = ids[i];
      c += step;
      next[i] = c >= size ? c - size : c;
      if (++filled === size) return;
    }
  }
}

/** Working arrays, reused from one build to the next (a table build allocates nothing else of its size). */
interface Scratch { ids: Uint32Array; next: Int32Array; skip: Int32Array; weight: Float64Array; credit: Float64Array; taken: Uint8Array }
let shared: Scratch | undefined;
function scratch(n: number, size: number): Scratch {
  if (!shared || shared.ids.length < n || shared.taken.length < size) {
    const cap = Math.max(n, shared?.ids.length ?? 0, 256);
    shared = {
      ids: new Uint32Array(cap), next: new Int32Array(cap), skip: new Int32Array(cap), weight: new Float64Array(cap), credit: new Float64Array(cap),
      taken: new Uint8Array(Math.max(size, shared?.taken.length ?? 0)),
    };
  }
  return shared;
}

/** How many slots of `table` each backend id holds. */
export function slotCounts(table: Uint32Array): Map<number, number> {
  const out = new Map<number, number>();
  for (const id of table) out.set(id, (out.get(id) ?? 0) + 1);
  return out;
}
