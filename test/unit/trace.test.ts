/**
 * parseTraceLine: the trace_pipe lines bpf_printk produces, as this kernel
 * and older ones format them, and the lines that are not bpf_printk output;
 * a read error ends the iteration (not the process); fileHolders.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileHolders, openTracePipe, parseTraceLine, type TraceLine } from '../../src/trace.js';
import { BpfError } from '../../src/errors.js';

describe('parseTraceLine', () => {
  it('parses a bpf_printk line from a packet handled in softirq', () => {
    const raw = '         python3-9283    [001] ..s2.  6551.054395: bpf_trace_printk: hello 777: packet on ifindex 27, 142 bytes';
    expect(parseTraceLine(raw)).toEqual({
      task: 'python3-9283', cpu: 1, timestamp: 6551.054395, message: 'hello 777: packet on ifindex 27, 142 bytes', raw,
    });
  });

  it('keeps task names with spaces, dashes, slashes and angle brackets', () => {
    expect(parseTraceLine('          <idle>-0       [000] d.s3.   100.000001: bpf_trace_printk: x')).toMatchObject({ task: '<idle>-0', cpu: 0, timestamp: 100.000001, message: 'x' });
    expect(parseTraceLine('  kworker/u4:1-123     [003] ....1  7.5: bpf_trace_printk: y')).toMatchObject({ task: 'kworker/u4:1-123', cpu: 3, message: 'y' });
    expect(parseTraceLine(' Web Content-4242 [012] ..s1. 42.000000: bpf_trace_printk: z')).toMatchObject({ task: 'Web Content-4242', cpu: 12, message: 'z' });
  });

  it('parses the older 4-flag format and the bpf_printk label', () => {
    expect(parseTraceLine('            ping-1234  [000] ..s1  5432.123456: bpf_trace_printk: old format')).toMatchObject({ task: 'ping-1234', cpu: 0, timestamp: 5432.123456, message: 'old format' });
    expect(parseTraceLine('            ping-1234  [000] ..s1  5432.123456: bpf_printk: new label')).toMatchObject({ message: 'new label' });
  });

  it('keeps colons and leading text of the message intact, and empty messages', () => {
    expect(parseTraceLine('  a-1 [000] .... 1.000000: bpf_trace_printk: key: value: 10.0.0.1:80')?.message).toBe('key: value: 10.0.0.1:80');
    expect(parseTraceLine('  a-1 [000] .... 1.000000: bpf_trace_printk: ')?.message).toBe('');
  });

  it('returns undefined for lines that are not bpf_printk output', () => {
    for (const raw of [
      '',
      '# tracer: nop',
      '#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION',
      '          <idle>-0       [000] d.s3.   100.000001: sched_switch: prev_comm=swapper',
      '          <idle>-0       [000] d.s3.   100.000001: tracing_mark_write: hello',
      'bpf_trace_printk: no header',
    ]) {
      expect(parseTraceLine(raw), raw).toBeUndefined();
    }
  });
});

describe('openTracePipe on a file that cannot be read', () => {
  it('ends the iteration with the read error instead of throwing from its timer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lbts-trace-'));
    try {
      // A directory opens, and every read of it fails with EISDIR.
      const pipe = openTracePipe(() => true, { path: dir });
      const seen: TraceLine[] = [];
      let caught: unknown;
      try {
        for await (const l of pipe) seen.push(l);
      } catch (e) {
        caught = e;
      }
      expect(seen).toEqual([]);
      expect(caught).toBeInstanceOf(BpfError);
      expect((caught as BpfError).code).toBe('EISDIR');
      expect((caught as BpfError).message).toBe(`read ${dir}: Is a directory (EISDIR)`);
      pipe.close(); // safe after the error
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('fileHolders', () => {
  it('names the process that has a file open, and nobody once it is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lbts-hold-'));
    const file = join(dir, 'held');
    writeFileSync(file, '');
    const child = spawn('sh', ['-c', `exec 3<"${file}"; echo ready; exec sleep 30`], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      expect(fileHolders(file)).toEqual([{ pid: child.pid, comm: 'sleep' }]);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
    expect(fileHolders(file)).toEqual([]);
  });
});
