/**
 * ringViews over the largest ring the reader maps (1 GiB of data, mapped
 * twice: 2 GiB of views): the element counts must not overflow 32-bit
 * shifts (mytcpdump --ring-size 1G failed with "Invalid typed array length").
 */
import { describe, expect, it } from 'vitest';
import { ringViews } from '../../src/ringbuf/raw.js';
import { MAX_RING_SIZE } from '../../src/ringbuf/ring.js';

describe('ringViews', () => {
  it('covers the whole double mapping of the largest ring', () => {
    const length = 2 * MAX_RING_SIZE;
    // Untouched pages of a large ArrayBuffer are never committed: this costs no memory.
    const data = Buffer.from(new ArrayBuffer(length));
    const v = ringViews(data);
    expect(v.u16.length).toBe(length / 2);
    expect(v.u32.length).toBe(length / 4);
    expect(v.i32.length).toBe(length / 4);
    expect(v.u64.length).toBe(length / 8);
    expect(v.i64.length).toBe(length / 8);
    expect(v.f64.length).toBe(length / 8);
    expect(v.dataView.byteLength).toBe(length);
  });
});
