/**
 * LessonPins: the pin directories of loaders whose maps other processes edit.
 * Pins under a base of this file's own on the real bpffs; every directory a
 * pin created must be gone after unpin (nothing left on the machine).
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BpfError, BpfMap, MapType, u32 } from '../src/index.js';
import { LessonPins } from '../src/pins.js';
import { pinnedMapId } from '../src/map.js';
import { kernelTests } from './helpers/kernel.js';

const BASE = '/sys/fs/bpf/lbts-pinstest';
const HASH = MapType.HASH;

describe.skipIf(!kernelTests())('LessonPins', () => {
  afterAll(() => { rmSync(BASE, { recursive: true, force: true }); });

  it('pins into base/lesson/<iface>-<netns>, finds it, and unpin removes every directory it made', () => {
    const pins = new LessonPins('demo', 'm1', 'maps', BASE);
    using a = BpfMap.create({ type: HASH, name: 'pins_a', maxEntries: 4 }, u32, u32);
    using b = BpfMap.create({ type: HASH, name: 'pins_b', maxEntries: 4 }, u32, u32);
    const dir = pins.defaultDir('eth9');
    expect(dir).toMatch(new RegExp(`^${BASE}/demo/eth9-\\d+$`));
    pins.pin(dir, { m1: a, m2: b });
    expect(pinnedMapId(join(dir, 'm1'))).toBe(a.info().id);
    expect(pins.list()).toEqual([dir]);
    expect(pins.find({ iface: 'eth9' })).toBe(dir);
    expect(pins.find()).toBe(dir);
    // A map no loaded program uses: the loader that pinned it counts as gone.
    expect(() => pins.assertAlive(dir)).toThrow(/is gone \(no program uses its maps\); start it again \(ESRCH\)$/);
    // ... so a second pin takes the directory over instead of refusing it.
    pins.pin(dir, { m1: b, m2: a });
    expect(pinnedMapId(join(dir, 'm1'))).toBe(b.info().id);
    pins.unpin(dir, ['m1', 'm2']);
    pins.unpin(dir, ['m1', 'm2']); // safe twice
    expect(existsSync(BASE)).toBe(false);
  });

  it('says where to look when no loader is found', () => {
    const pins = new LessonPins('demo', 'm1', 'maps', BASE);
    let err: unknown;
    try { pins.find({ iface: 'nosuch0' }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(BpfError);
    expect((err as BpfError).message).toMatch(/^find demo loader: no demo loader on nosuch0 in this network namespace .*pins are per bpffs and per namespace/);
    expect(() => pins.find()).toThrow(/no demo loader is running \(nothing pinned under/);
    expect(() => pins.assertAlive(join(BASE, 'demo', 'x'))).toThrow(/nothing pinned at .* \(ENOENT\)$/);
  });

  it('refuses a directory off bpffs and leaves nothing', () => {
    const pins = new LessonPins('demo', 'm1', 'maps', BASE);
    using a = BpfMap.create({ type: HASH, name: 'pins_c', maxEntries: 4 }, u32, u32);
    const dir = `/tmp/lbts-pinstest-${process.pid}/x`;
    try {
      expect(() => pins.pin(dir, { m1: a })).toThrow(/is not on a bpffs \(EPERM\)$/);
      expect(existsSync(`/tmp/lbts-pinstest-${process.pid}`)).toBe(false);
    } finally {
      rmSync(`/tmp/lbts-pinstest-${process.pid}`, { recursive: true, force: true });
    }
  });
});
