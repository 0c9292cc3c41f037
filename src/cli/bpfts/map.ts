/**
 * `bpfts map`: list, show, dump, lookup, update, delete and pin any map on
 * the system (not only ours), named by `id:N`, by name, or by pinned path.
 *
 * Keys and values are shown with the field names of the map's BTF (see
 * src/btf/codec.ts for how each C type appears), as raw hex bytes where the
 * map has no BTF. They are given as JSON in the same shapes (an object with
 * the field names, a number for an integer key, a dotted IPv4 address for a
 * `__be32` field whose name ends in `ip` or `addr`, enum names, strings for
 * `char[]`; 64-bit integers may be quoted) or as hex bytes of exactly the
 * key's or value's size (`0x0a000001`, spaces between bytes allowed).
 * Per-CPU values are shown per CPU and summed; an update takes one value
 * (written to every CPU) or an array of one value per possible CPU.
 *
 * Exit status: 0 done, 1 the operation failed (the kernel refused, no such
 * key), 2 bad usage (unknown map, bad JSON, unknown field, wrong size, not
 * root). Errors are one line on stderr. Dumps read the map with batch
 * lookups and stream their output; --json prints one JSON document.
 */
import type { Command } from 'commander';
import { BpfMap, PerCpuMap, isPerCpuMapType, mapInfoByFd, possibleCpus, type MapInfoView, type UpdateFlag } from '../../map.js';
import { BpfError, Errno, bpfCallError } from '../../errors.js';
import type { Codec } from '../../codec.js';
import { mapCodecs, type MapCodecs } from '../../btf/maps.js';
import { toJson, type BtfValue } from '../../btf/codec.js';
import { bpf } from '../../ffi/libbpf.js';
import { closeFd } from '../../ffi/sys.js';
import { mapFdById, mapIds } from '../../ffi/mapids.js';
import { Output } from '../output.js';
import { EXIT, UsageError, errorLine, requireRoot } from './common.js';
import { mapTypeName } from '../../kinds.js';



/** A key or value as raw bytes: the CLI parses and prints with the BTF codecs itself. */
function rawCodec(size: number): Codec<Buffer> {
  return {
    size,
    encode: (v, b, o = 0) => { v.copy(b, o); },
    decode: (b, o = 0) => Buffer.from(b.subarray(o, o + size)),
  };
}

/** An opened map with its info and display codecs. */
export interface CliMap {
  info: MapInfoView;
  perCpu: boolean;
  map: BpfMap<Buffer, Buffer> | PerCpuMap<Buffer, Buffer>;
  codecs: MapCodecs;
  close(): void;
}


/** An fd for `id:N`, a pinned path, or a map name. Throws a UsageError for an unknown or ambiguous map, a BpfError when the kernel refuses. */
function mapFdOf(spec: string): number {
  const idm = /^id:(\d+)$/.exec(spec);
  if (idm) {
    const fd = mapFdById(Number(idm[1]));
    if (fd === -Errno.ENOENT) throw new UsageError(`map ${spec}: no map with id ${idm[1]}`);
    if (fd < 0) throw bpfCallError(`open map ${spec}`, -fd);
    return fd;
  }
  if (spec.startsWith('/')) {
    const fd = bpf.obj_get(spec);
    if (fd === -Errno.ENOENT) throw new UsageError(`map ${spec}: nothing is pinned there`);
    if (fd < 0) throw bpfCallError(`open pinned map ${spec}`, -fd);
    try {
      mapInfoByFd(fd, spec);
    } catch {
      closeFd(fd);
      throw new UsageError(`map ${spec}: what is pinned there is not a map`);
    }
    return fd;
  }
  if (!/^[\w.]{1,15}$/.test(spec)) throw new UsageError(`map '${spec}': expected id:N, a map name or a pinned path`);
  const ids = mapIds();
  if ('errno' in ids) throw bpfCallError('list maps', ids.errno);
  const found: Array<{ id: number; fd: number }> = [];
  for (const id of ids) {
    const fd = mapFdById(id);
    if (fd < 0) continue;
    let name: string;
    try { name = mapInfoByFd(fd).name; } catch { closeFd(fd); continue; }
    if (name === spec) found.push({ id, fd }); else closeFd(fd);
  }
  if (found.length === 0) throw new UsageError(`map ${spec}: no map with that name (bpfts map list shows them)`);
  if (found.length > 1) {
    for (const f of found) closeFd(f.fd);
    throw new UsageError(`map ${spec}: ${found.length} maps have that name (ids ${found.map((f) => f.id).join(', ')}): say id:N`);
  }
  return found[0].fd;
}

/** Opens a map for the CLI. Throws a UsageError or a BpfError. */
export function openCliMap(spec: string): CliMap {
  requireRoot('open maps');
  const fd = mapFdOf(spec);
  try {
    const info = mapInfoByFd(fd, spec);
    const perCpu = isPerCpuMapType(info.type);
    const src = { fd, name: info.name, owned: true };
    const key = rawCodec(info.keySize);
    const value = rawCodec(info.valueSize);
    const map = perCpu ? new PerCpuMap(src, key, value) : new BpfMap(src, key, value);
    const codecs = mapCodecs(info);
    return { info, perCpu, map, codecs, close: () => map.close() };
  } catch (e) {
    closeFd(fd);
    throw e;
  }
}

/** Quotes integer literals of 16 digits or more so JSON.parse keeps them exact (the codecs take decimal strings). */
function parseJsonExact(text: string): unknown {
  const quoted = text.replace(/("(?:[^"\\]|\\.)*")|(-?\d{16,})(?![.\deE])/g, (m, str: string | undefined, num: string | undefined) => (str ? m : `"${num}"`));
  return JSON.parse(quoted);
}

/**
 * The bytes of a key or value given on the command line: hex bytes of
 * exactly `codec.size`, or JSON encoded with the BTF codec. Throws a
 * UsageError naming what was wrong.
 */
export function parseArg(text: string, codec: Codec<BtfValue>, what: string): Buffer {
  const b = Buffer.alloc(codec.size);
  const t = text.trim();
  if (/^0x/i.test(t)) {
    const hex = t.slice(2).replace(/[\s_:]/g, '');
    if (!/^([0-9a-f]{2})+$/i.test(hex)) throw new UsageError(`${what}: bad hex bytes '${text}'`);
    if (hex.length / 2 !== codec.size) throw new UsageError(`${what}: ${hex.length / 2} bytes given, the map's ${what} is ${codec.size} bytes`);
    b.write(hex, 0, 'hex');
    return b;
  }
  let v: unknown;
  try {
    v = parseJsonExact(t);
  } catch (e) {
    // A bare word that is not JSON: take it as a string (an address, an enum name).
    if (/^[\w.:-]+$/.test(t)) v = t;
    else throw new UsageError(`${what}: bad JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  try {
    codec.encode(v as BtfValue, b, 0);
  } catch (e) {
    throw new UsageError(`${what}: ${(e as Error).message}`);
  }
  return b;
}

/** Adds per-CPU values: numbers and bigints added, objects and arrays member by member, anything else CPU 0's. */
export function sumValues(vals: BtfValue[]): BtfValue {
  const first = vals[0];
  if (typeof first === 'number') return vals.reduce<number>((a, v) => a + (v as number), 0);
  if (typeof first === 'bigint') return vals.reduce<bigint>((a, v) => a + (v as bigint), 0n);
  if (Array.isArray(first)) return first.map((_, i) => sumValues(vals.map((v) => (v as BtfValue[])[i])));
  if (first !== null && typeof first === 'object') {
    const out: Record<string, BtfValue> = {};
    for (const k of Object.keys(first)) out[k] = sumValues(vals.map((v) => (v as Record<string, BtfValue>)[k]));
    return out;
  }
  return first;
}

function infoJson(m: MapInfoView, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: m.id, type: mapTypeName(m.type), name: m.name, flags: m.flags, bytes_key: m.keySize, bytes_value: m.valueSize,
    max_entries: m.maxEntries, ...(m.btfId ? { btf_id: m.btfId } : {}), ...extra,
  };
}

function infoLine(m: MapInfoView): string {
  return `${m.id}: ${mapTypeName(m.type)}  name ${m.name || '(none)'}  flags 0x${m.flags.toString(16)}  key ${m.keySize}B  value ${m.valueSize}B  max_entries ${m.maxEntries}${m.btfId ? `  btf_id ${m.btfId}` : ''}`;
}

interface JsonOpt { json?: boolean }

/** Runs an action: one-line errors, exit status 1 for a failed operation, 2 for bad usage. */
function action<A extends unknown[]>(fn: (out: Output, ...args: A) => void | Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const out = new Output(() => { /* the reader went away: stop writing */ });
    try {
      await fn(out, ...args);
      await out.flush();
    } catch (e) {
      await out.flush();
      const err = e as Error;
      process.stderr.write(`${errorLine(err)}\n`);
      process.exitCode = e instanceof UsageError || e instanceof TypeError || e instanceof RangeError ? EXIT.USAGE : EXIT.FAILED;
    }
  };
}

function jsonWanted(cmd: Command): boolean {
  return Boolean((cmd.optsWithGlobals() as JsonOpt).json);
}

/**
 * Streams every entry of a map (batch lookups, else key iteration) to
 * `emit(keys, keyOffset, values, valueOffset)`: CPU c's value of a per-CPU
 * map is at valueOffset + c * slot. The buffers are reused: read them in
 * `emit`. After each batch it awaits `between()` (the output draining), so
 * a dump holds one batch at a time. Stops when `stop()` says so.
 */
async function forEachEntry(m: CliMap, emit: (kb: Buffer, ko: number, vb: Buffer, vo: number) => void, stop: () => boolean, between: () => Promise<void>): Promise<void> {
  const ks = m.info.keySize;
  const vs = m.info.valueSize;
  const slot = m.perCpu ? Math.ceil(vs / 8) * 8 : vs;
  const ncpu = m.perCpu ? possibleCpus : 1;
  const per = slot * ncpu;
  let batched = false;
  if (m.map.supportsBatch) {
    try {
      for (const { keys, values, count } of m.map.rawBatches(8192)) {
        batched = true;
        for (let i = 0; i < count; i++) emit(keys, i * ks, values, i * per);
        await between();
        if (stop()) return;
      }
      return;
    } catch (e) {
      const noBatch = e instanceof BpfError && [Errno.EINVAL, Errno.ENOSYS, Errno.EOPNOTSUPP, Errno.ENOTSUPP].includes(e.errno as never);
      if (!noBatch || batched) throw e;
    }
  }
  const vb = Buffer.alloc(per);
  let i = 0;
  for (const [k, v] of m.map.entries()) {
    (Array.isArray(v) ? v : [v]).forEach((x, c) => x.copy(vb, c * slot));
    emit(k, 0, vb, 0);
    if (++i % 8192 === 0) {
      await between();
      if (stop()) return;
    }
  }
}

/**
 * Lines copied into 128 KiB blocks as soon as they are made (so the strings
 * die young and cost the garbage collector nothing), each block written to
 * stdout in one call; drained() waits until stdout has taken what was
 * written, so a dump's memory stays bounded. Stops writing once stdout's
 * reader has gone (EPIPE).
 */
class BlockWriter {
  static readonly SIZE = 1 << 17;
  #buf = Buffer.allocUnsafe(BlockWriter.SIZE);
  #pos = 0;
  #closed = false;
  #pending = 0;
  #waiters: Array<() => void> = [];

  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {
    stream.on('error', () => { this.#closed = true; this.#wake(); });
  }

  get closed(): boolean {
    return this.#closed;
  }

  line(s: string): void {
    if (this.#closed) return;
    if (this.#pos + s.length * 3 + 1 > this.#buf.length) {
      this.#flush();
      if (s.length * 3 + 1 > this.#buf.length) { this.#write(Buffer.from(`${s}\n`)); return; }
    }
    this.#pos += this.#buf.write(s, this.#pos);
    this.#buf[this.#pos++] = 10;
  }

  #flush(): void {
    if (this.#pos === 0) return;
    const b = this.#buf.subarray(0, this.#pos);
    this.#buf = Buffer.allocUnsafe(BlockWriter.SIZE);
    this.#pos = 0;
    this.#write(b);
  }

  #write(b: Buffer): void {
    if (this.#closed) return;
    this.#pending++;
    this.stream.write(b, () => { this.#pending--; if (this.#pending === 0) this.#wake(); });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Writes out what is held and resolves once stdout has taken every block (or its reader is gone). */
  async drained(): Promise<void> {
    this.#flush();
    if (this.#closed || this.#pending === 0) return;
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
}

/** Slot size of one CPU's value in a per-CPU map's value array. */
function slotOf(m: CliMap): number {
  return Math.ceil(m.info.valueSize / 8) * 8;
}

/** Adds `bpfts map ...` to the program. */
export function registerMap(program: Command): void {
  const map = program.command('map').description('list, show, dump, look up, update, delete and pin BPF maps: <map> is id:N, a name, or a pinned path');
  const withJson = (c: Command) => c.option('--json', 'one JSON document (like bpftool -j)');

  withJson(map.command('list').description('every map on the system: id, type, name, sizes, BTF id'))
    .action(action((out, _opts: JsonOpt, cmd: Command) => {
      requireRoot('open maps');
      const ids = mapIds();
      if ('errno' in ids) throw bpfCallError('list maps', ids.errno);
      const infos: MapInfoView[] = [];
      for (const id of ids) {
        const fd = mapFdById(id);
        if (fd < 0) continue; // gone meanwhile
        try { infos.push(mapInfoByFd(fd)); } catch { /* gone */ } finally { closeFd(fd); }
      }
      if (jsonWanted(cmd)) out.line(JSON.stringify(infos.map((m) => infoJson(m))));
      else for (const m of infos) out.line(infoLine(m));
    }));

  withJson(map.command('show <map>').description('one map: id, type, name, sizes, and the C types of its key and value'))
    .action(action((out, spec: string, _opts: JsonOpt, cmd: Command) => {
      const m = openCliMap(spec);
      try {
        const types = { key_type: m.codecs.keyType ?? null, value_type: m.codecs.valueType ?? null };
        if (jsonWanted(cmd)) out.line(JSON.stringify(infoJson(m.info, types)));
        else {
          out.line(infoLine(m.info));
          out.line(`\tkey ${types.key_type ?? '(no BTF: hex)'}  value ${types.value_type ?? '(no BTF: hex)'}${m.perCpu ? `  (one value per CPU, ${possibleCpus} CPUs)` : ''}`);
        }
      } finally {
        m.close();
      }
    }));

  withJson(map.command('dump <map>').description('every entry, with BTF field names (hex without BTF); per-CPU values per CPU and summed; streamed'))
    .action(action(async (_out, spec: string, _opts: JsonOpt, cmd: Command) => {
      const m = openCliMap(spec);
      const json = jsonWanted(cmd);
      let n = 0;
      try {
        const kc = m.codecs.key;
        const vc = m.codecs.value;
        const slot = slotOf(m);
        const cpus = Array.from({ length: possibleCpus }, (_, c) => c);
        const w = new BlockWriter();
        const line = (l: string) => w.line(l);
        if (json) line('[');
        await forEachEntry(m, (kb, ko, vb, vo) => {
          if (json) {
            let rec: string;
            if (m.perCpu) {
              const vs = cpus.map((c) => vc.decode(vb, vo + c * slot));
              rec = `{"key":${kc.json(kb, ko)},"values":[${cpus.map((c) => `{"cpu":${c},"value":${vc.json(vb, vo + c * slot)}}`).join(',')}],"sum":${toJson(sumValues(vs))}}`;
            } else {
              rec = `{"key":${kc.json(kb, ko)},"value":${vc.json(vb, vo)}}`;
            }
            line(n === 0 ? rec : `,${rec}`);
          } else if (m.perCpu) {
            line(`key: ${kc.json(kb, ko)}`);
            for (const c of cpus) line(`  cpu${c}: ${vc.json(vb, vo + c * slot)}`);
            line(`  sum: ${toJson(sumValues(cpus.map((c) => vc.decode(vb, vo + c * slot))))}`);
          } else {
            line(`key: ${kc.json(kb, ko)}  value: ${vc.json(vb, vo)}`);
          }
          n++;
        }, () => w.closed, () => w.drained());
        if (json) line(']');
        else line(`Found ${n} element${n === 1 ? '' : 's'}`);
        await w.drained();
      } finally {
        m.close();
      }
    }));

  withJson(map.command('lookup <map> <key>').description('the value of one key (JSON or 0x hex); exit 1 when the key is not there'))
    .action(action((out, spec: string, keyText: string, _opts: JsonOpt, cmd: Command) => {
      const m = openCliMap(spec);
      try {
        const kb = parseArg(keyText, m.codecs.key, 'key');
        const got = m.map.get(kb);
        if (got === undefined) throw new BpfError(`look up ${keyText} in map ${m.info.name || spec}`, Errno.ENOENT, 'no such key');
        const key = m.codecs.key.decode(kb, 0);
        const json = jsonWanted(cmd);
        if (m.perCpu) {
          const vs = (got as Buffer[]).map((v) => m.codecs.value.decode(v, 0));
          if (json) out.line(`{"key":${toJson(key)},"values":[${vs.map((v, cpu) => `{"cpu":${cpu},"value":${toJson(v)}}`).join(',')}],"sum":${toJson(sumValues(vs))}}`);
          else {
            out.line(`key: ${toJson(key)}`);
            vs.forEach((v, cpu) => out.line(`  cpu${cpu}: ${toJson(v)}`));
            out.line(`  sum: ${toJson(sumValues(vs))}`);
          }
        } else {
          const v = m.codecs.value.decode(got as Buffer, 0);
          out.line(json ? `{"key":${toJson(key)},"value":${toJson(v)}}` : `key: ${toJson(key)}  value: ${toJson(v)}`);
        }
      } finally {
        m.close();
      }
    }));

  map.command('update <map> <key> <value>')
    .description('writes one entry (key and value as JSON or 0x hex; a per-CPU map takes one value for every CPU or an array of one per CPU)')
    .option('--flag <flag>', 'any | noexist (fail if the key exists) | exist (fail if it does not)', 'any')
    .action(action((_out, spec: string, keyText: string, valueText: string, opts: { flag: string }) => {
      if (!['any', 'noexist', 'exist'].includes(opts.flag)) throw new UsageError(`--flag ${opts.flag}: expected any, noexist or exist`);
      const m = openCliMap(spec);
      try {
        const kb = parseArg(keyText, m.codecs.key, 'key');
        if (m.perCpu) {
          const t = valueText.trim();
          let vals: Buffer[];
          if (t.startsWith('[') && !/^\[\s*\]$/.test(t)) {
            let arr: unknown;
            try { arr = parseJsonExact(t); } catch (e) { throw new UsageError(`value: bad JSON: ${(e as Error).message}`); }
            if (!Array.isArray(arr) || arr.length !== possibleCpus) throw new UsageError(`value: a per-CPU map takes one value, or an array of ${possibleCpus} (one per possible CPU)`);
            vals = arr.map((v, i) => parseArg(typeof v === 'string' && /^0x/i.test(v) ? v : JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x)), m.codecs.value, `value[${i}]`));
          } else {
            const one = parseArg(valueText, m.codecs.value, 'value');
            vals = new Array(possibleCpus).fill(one);
          }
          (m.map as PerCpuMap<Buffer, Buffer>).set(kb, vals, opts.flag as UpdateFlag);
        } else {
          (m.map as BpfMap<Buffer, Buffer>).set(kb, parseArg(valueText, m.codecs.value, 'value'), opts.flag as UpdateFlag);
        }
      } finally {
        m.close();
      }
    }));

  map.command('delete <map> <key>').description('deletes one key (JSON or 0x hex); exit 1 when it is not there')
    .action(action((_out, spec: string, keyText: string) => {
      const m = openCliMap(spec);
      try {
        const kb = parseArg(keyText, m.codecs.key, 'key');
        if (!m.map.delete(kb)) throw new BpfError(`delete ${keyText} from map ${m.info.name || spec}`, Errno.ENOENT, 'no such key');
      } finally {
        m.close();
      }
    }));

  map.command('pin <map> <path>').description('pins the map at <path> on a bpffs')
    .action(action((_out, spec: string, path: string) => {
      const m = openCliMap(spec);
      try {
        m.map.pin(path);
      } finally {
        m.close();
      }
    }));
}
