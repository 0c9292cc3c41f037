/**
 * `bpfts map` against maps this file creates and pins in its own bpffs
 * folder: the BTF-typed conn_table and per-CPU table of
 * bpf/testdata/btf_kinds.bpf.o, and a map created without BTF. Output is
 * checked field by field, --json parsed; bad input gives one line, exit 2
 * (1 when the operation fails) and changes nothing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfMap, BpfObject, MapType, possibleCpus, u32 } from '../src/index.js';
import { ensureObject, REPO_ROOT } from '../src/cli/build.js';
import { kernelTests, removePins } from './helpers/kernel.js';

const MAIN = join(REPO_ROOT, 'src/cli/bpfts/main.ts');

function bpfts(args: string[], opts: { unprivileged?: boolean } = {}): { code: number; out: string; err: string } {
  const cmd = opts.unprivileged ? 'unshare' : process.execPath;
  const argv = [...(opts.unprivileged ? ['--user', process.execPath] : []), '--import', 'tsx', MAIN, ...args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', cwd: REPO_ROOT, timeout: 60_000, maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Runs bpfts and expects exit 0 with nothing on stderr. */
function ok(args: string[]): string {
  const r = bpfts(args);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  return r.out;
}

/** Expects one error line and the exit status. */
function fails(args: string[], code: number, message: RegExp): void {
  const r = bpfts(args);
  expect(r.out).toBe('');
  expect(r.err.trimEnd().split('\n')).toHaveLength(1);
  expect(r.err.trimEnd()).toMatch(message);
  expect(r.code).toBe(code);
}

describe.skipIf(!kernelTests())('bpfts map', () => {
  const dir = `/sys/fs/bpf/libbpf-ts/bpfts-map-${process.pid}`;
  const conn = join(dir, 'conn_table');
  const pcpu = join(dir, 'pcpu_table');
  const raw = join(dir, 'raw');
  const rawName = `lbtsraw${process.pid % 100000}`;
  let obj: BpfObject;
  let rawMap: BpfMap<number, number>;

  beforeAll(() => {
    mkdirSync(dir, { recursive: true });
    obj = BpfObject.load(ensureObject('testdata', 'btf_kinds'));
    obj.map('conn_table').pin(conn);
    obj.perCpuMap('pcpu_table').pin(pcpu);
    rawMap = BpfMap.create({ type: MapType.HASH, name: rawName, maxEntries: 8 }, u32, u32);
    rawMap.pin(raw);
  });
  afterAll(() => {
    rawMap?.close();
    obj?.close();
    removePins(dir);
  });

  it('updates, looks up and dumps a BTF map with its field names', () => {
    ok(['map', 'update', conn, '{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":6}', '{"packets":3,"bytes":18446744073709551615}']);
    ok(['map', 'update', conn, '0x0a000003 0a000004 11 000000', '{"packets":1,"bytes":60}']);
    const one = JSON.parse(ok(['map', 'lookup', conn, '{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":6}', '--json']));
    expect(one.key).toEqual({ src_ip: '10.0.0.1', dst_ip: '10.0.0.2', proto: 6, pad: [0, 0, 0] });
    expect(one.value.packets).toBe(3);
    expect(ok(['map', 'lookup', conn, '0x0a0000010a0000020600000000'.slice(0, 26)])).toContain('"bytes":18446744073709551615');

    const text = ok(['map', 'dump', conn]).trimEnd().split('\n');
    expect(text).toHaveLength(3);
    expect(text).toContain('key: {"src_ip":"10.0.0.3","dst_ip":"10.0.0.4","proto":17,"pad":[0,0,0]}  value: {"packets":1,"bytes":60}');
    expect(text[2]).toBe('Found 2 elements');

    const dump = JSON.parse(ok(['map', 'dump', conn, '--json'])) as Array<{ key: Record<string, unknown>; value: Record<string, unknown> }>;
    expect(dump).toHaveLength(2);
    const e = dump.find((d) => d.key.src_ip === '10.0.0.3')!;
    expect(e.key).toEqual({ src_ip: '10.0.0.3', dst_ip: '10.0.0.4', proto: 17, pad: [0, 0, 0] });
    expect(e.value).toEqual({ packets: 1, bytes: 60 });

    ok(['map', 'delete', conn, '{"src_ip":"10.0.0.3","dst_ip":"10.0.0.4","proto":17}']);
    expect(JSON.parse(ok(['map', 'dump', conn, '--json']))).toHaveLength(1);
  });

  it('shows per-CPU values per CPU and summed', () => {
    const key = '{"src_ip":"1.2.3.4","dst_ip":"5.6.7.8","proto":6}';
    ok(['map', 'update', pcpu, key, '{"packets":2,"bytes":100}']);
    const got = JSON.parse(ok(['map', 'lookup', pcpu, key, '--json']));
    expect(got.values).toHaveLength(possibleCpus);
    expect(got.values[0]).toEqual({ cpu: 0, value: { packets: 2, bytes: 100 } });
    expect(got.sum).toEqual({ packets: 2 * possibleCpus, bytes: 100 * possibleCpus });
    const perCpu = JSON.stringify(Array.from({ length: possibleCpus }, (_, i) => ({ packets: i + 1 })));
    ok(['map', 'update', pcpu, key, perCpu]);
    const text = ok(['map', 'dump', pcpu]).trimEnd().split('\n');
    expect(text[0]).toBe('key: {"src_ip":"1.2.3.4","dst_ip":"5.6.7.8","proto":6,"pad":[0,0,0]}');
    expect(text[1]).toBe('  cpu0: {"packets":1,"bytes":0}');
    expect(text[possibleCpus + 1]).toBe(`  sum: {"packets":${(possibleCpus * (possibleCpus + 1)) / 2},"bytes":0}`);
  });

  it('shows a map without BTF as hex, found by name, and takes hex or integers', () => {
    ok(['map', 'update', rawName, '0x0a000001', '7']);
    expect(ok(['map', 'dump', raw])).toBe('key: "0x0a000001"  value: "0x07000000"\nFound 1 element\n');
    expect(JSON.parse(ok(['map', 'lookup', raw, '0x0a000001', '--json']))).toEqual({ key: '0x0a000001', value: '0x07000000' });
    const show = JSON.parse(ok(['map', 'show', rawName, '--json']));
    expect(show).toMatchObject({ name: rawName, type: 'hash', bytes_key: 4, bytes_value: 4, max_entries: 8, key_type: null, value_type: null });
    const connShow = JSON.parse(ok(['map', 'show', conn, '--json']));
    expect(connShow).toMatchObject({ name: 'conn_table', key_type: 'struct conn_key', value_type: 'struct conn_val' });
    const list = JSON.parse(ok(['map', 'list', '--json'])) as Array<{ id: number; name: string }>;
    expect(list.find((m) => m.id === connShow.id)?.name).toBe('conn_table');
    expect(ok(['map', 'show', `id:${connShow.id}`])).toMatch(new RegExp(`^${connShow.id}: hash  name conn_table  flags 0x0  key 12B  value 16B  max_entries 65536  btf_id \\d+\\n\\tkey struct conn_key  value struct conn_val\\n$`));
  });

  it('dumps a large map with batch lookups, as one JSON document, and stops cleanly when its reader goes away', () => {
    const big = join(dir, 'big');
    const m = obj.map('conn_table');
    const entries = Array.from({ length: 20000 }, (_, i) => [{ src_ip: 0x0b000000 + i, dst_ip: i, proto: 17 }, { packets: i, bytes: 2 * i }] as const);
    expect(m.updateBatch(entries)).toBe(20000);
    try {
      m.pin(big);
      const all = JSON.parse(ok(['map', 'dump', big, '--json'])) as Array<{ key: { src_ip: string; dst_ip: string }; value: { packets: number; bytes: number } }>;
      const ours = all.filter((e) => e.key.src_ip.startsWith('11.'));
      expect(ours).toHaveLength(20000);
      const e = ours.find((x) => x.key.src_ip === '11.0.1.0')!;
      expect(e.value).toEqual({ packets: 256, bytes: 512 });
      expect(e.key.dst_ip).toBe('0.0.1.0');
      const r = spawnSync('bash', ['-c', `"${process.execPath}" --import tsx "${MAIN}" map dump "${big}" | head -1; echo "status \${PIPESTATUS[0]}"`], { encoding: 'utf8', cwd: REPO_ROOT });
      expect(r.stdout).toMatch(/^key: \{"src_ip":.*\nstatus 0\n$/);
      expect(r.stderr).toBe('');
    } finally {
      m.deleteBatch(entries.map(([k]) => k));
    }
  });

  it('pins a map', () => {
    const p = join(dir, 'again');
    ok(['map', 'pin', raw, p]);
    expect(existsSync(p)).toBe(true);
    expect(ok(['map', 'dump', p])).toContain('Found 1 element');
  });

  it('refuses bad input with one line and exit 2, failed operations with exit 1, and changes nothing', () => {
    ok(['map', 'update', conn, '{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":6}', '{"packets":3}']);
    const before = ok(['map', 'dump', conn, '--json']);
    fails(['map', 'show', 'id:999999999'], 2, /^bpfts: map id:999999999: no map with id 999999999$/m);
    fails(['map', 'dump', 'no_such_map_x'], 2, /^bpfts: map no_such_map_x: no map with that name/);
    fails(['map', 'dump', join(dir, 'nothing')], 2, /nothing is pinned there/);
    fails(['map', 'update', conn, '{"src_ip":"10.0.0.9"', '{}'], 2, /^bpfts: key: bad JSON/);
    fails(['map', 'update', conn, '{"src_ip":"10.0.0.9","port":1}', '{}'], 2, /^bpfts: key: conn_key: struct conn_key has no field 'port' \(fields: src_ip, dst_ip, proto, pad\)$/);
    fails(['map', 'update', conn, '0x0a000001', '{}'], 2, /^bpfts: key: 4 bytes given, the map's key is 12 bytes$/);
    fails(['map', 'update', conn, '{"proto":6}', '{"packets":-1}'], 2, /^bpfts: value: conn_val\.packets: -1 does not fit in u64/);
    fails(['map', 'update', conn, '{"proto":6}', '{}', '--flag', 'sometimes'], 2, /--flag sometimes/);
    fails(['map', 'lookup', conn, '{"proto":99}'], 1, /^bpfts: look up \{"proto":99\} in map conn_table: no such key \(ENOENT\)$/);
    fails(['map', 'delete', conn, '{"proto":99}'], 1, /no such key \(ENOENT\)$/);
    fails(['map', 'update', conn, '{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":6}', '{}', '--flag', 'noexist'], 1, /key already exists \(EEXIST\)$/);
    fails(['map', 'pin', raw, join(dir, 'again2', 'x')], 1, /^bpfts: pin map/);
    fails(['map', 'frob'], 2, /unknown command 'frob'/);
    expect(ok(['map', 'dump', conn, '--json'])).toBe(before);
    const r = bpfts(['map', 'list'], { unprivileged: true });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^bpfts: open maps: needs root: run it with sudo \(EPERM\)\n$/);
  });
});
