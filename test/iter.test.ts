/**
 * BPF iterators on a real kernel: an iter/task program printing
 * "<tgid> <pid> <comm>" for every task lists this test's own process;
 * an iter/bpf_map program lists the map this test created; the
 * output is read as chunks, text and lines, each read a fresh run; a
 * detached link refuses reads; a non-iterator program says what it is.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BpfObject, u32, u64 } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { probeBtf } from '../src/features.js';
import { featureTests } from './helpers/kernel.js';
import { throwsBpf } from './helpers/expect.js';

describe.skipIf(!featureTests(probeBtf, [5, 9]))('iterators', () => {
  const objPath = ensureObject('testdata', 'iter_task');
  const comm = readFileSync('/proc/self/comm', 'utf8').trim();

  it('iter/task lists every task, this process among them, as the program prints them', () => {
    using obj = BpfObject.load(objPath);
    using link = obj.program('dump_tasks').attachIter();
    const lines = [...link.lines()];
    expect(lines.length).toBeGreaterThan(10);
    expect(lines).toContain(`${process.pid} ${process.pid} ${comm}`);
    for (const l of lines) expect(l).toMatch(/^\d+ \d+ .*$/);
    // every read is a new run
    expect(link.text().split('\n')).toContain(`${process.pid} ${process.pid} ${comm}`);
  });

  it('a .rodata filter set before load limits the walk to this process\'s threads', () => {
    using obj = BpfObject.open(objPath);
    obj.setConst('only_tgid', process.pid).load();
    using link = obj.program('dump_tasks').attachIter();
    const lines = [...link.lines()];
    expect(lines.length).toBeGreaterThanOrEqual(1);
    for (const l of lines) expect(l.split(' ')[0]).toBe(String(process.pid));
    const tasks = readFileSync(`/proc/${process.pid}/status`, 'utf8').match(/^Threads:\s+(\d+)/m)![1];
    expect(Math.abs(lines.length - Number(tasks))).toBeLessThanOrEqual(2); // node threads come and go
  });

  it("iter/bpf_map lists every map, this object's among them; reads in small chunks; detach twice is safe", () => {
    using obj = BpfObject.load(objPath);
    const m = obj.map('iter_values', u32, u64);
    const id = m.info().id;
    using link = obj.program('dump_maps').attachIter();
    const chunks = [...link.read(16)];
    expect(chunks.length).toBeGreaterThan(1); // 16-byte reads: several chunks
    const lines = Buffer.concat(chunks).toString().split('\n');
    expect(lines).toContain(`${id} iter_values 16`);
    link.detach();
    link.detach();
    throwsBpf(() => link.text(), /^read iterator iter dump_maps on bpf_map: the iterator link is detached \(EBADF\)$/);
  });

  it('refuses a program that is not an iterator', () => {
    using obj = BpfObject.load(ensureObject('testdata', 'pass'));
    throwsBpf(() => obj.program().attachIter(), /^attach program xdp_pass to iterator xdp: xdp_pass is an xdp program \(section xdp\), not tracing: it attaches to an interface's XDP hook/);
  });
});
