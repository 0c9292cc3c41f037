/**
 * bpf_printk output: the kernel's trace_pipe, read without blocking the event
 * loop, mounting tracefs when it is not mounted (as inside `ip netns exec`).
 *
 * trace_pipe is one queue for the whole machine: each line goes to one reader.
 * Two readers at once (two loaders, or tests in parallel) split the lines.
 */
import { closeSync, constants, existsSync, mkdirSync, openSync, readSync } from 'node:fs';
import { isTracefs, mountFs } from './ffi/sys.js';
import { BpfError, Errno } from './errors.js';
import { errnoName } from './ffi/errno.js';

const CANDIDATES = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

/**
 * The tracefs directory, mounting tracefs at /sys/kernel/tracing if needed.
 * Throws a BpfError when it cannot be found or mounted.
 */
export function tracefsDir(): string {
  for (const d of CANDIDATES) if (isTracefs(d) && existsSync(`${d}/trace_pipe`)) return d;
  const target = CANDIDATES[0];
  if (!existsSync(target)) mkdirSync(target, { recursive: true });
  const e = mountFs('tracefs', target);
  if (e !== 0) throw new BpfError(`mount tracefs at ${target}`, e);
  return target;
}

/** One parsed trace_pipe line of a bpf_printk. */
export interface TraceLine {
  /** The task that was running ("<idle>-0", "ping-1234"). */
  task: string;
  cpu: number;
  /** Seconds since boot. */
  timestamp: number;
  /** What the program printed. */
  message: string;
  /** The whole line. */
  raw: string;
}

const LINE = /^\s*(.+?)\s+\[(\d+)\]\s+\S+\s+([\d.]+):\s+(?:bpf_trace_printk|bpf_printk):\s?(.*)$/;

/** Parses a trace_pipe line; undefined for lines that are not bpf_printk output. */
export function parseTraceLine(raw: string): TraceLine | undefined {
  const m = LINE.exec(raw);
  if (!m) return undefined;
  return { task: m[1], cpu: Number(m[2]), timestamp: Number(m[3]), message: m[4], raw };
}

/** A reader of trace_pipe; close() is idempotent. */
export interface TracePipe extends AsyncIterable<TraceLine> {
  close(): void;
}

/**
 * Streams bpf_printk lines from trace_pipe, keeping those `filter` accepts.
 * Throws a BpfError when trace_pipe cannot be opened.
 */
export function openTracePipe(filter: (l: TraceLine) => boolean = () => true): TracePipe {
  const path = `${tracefsDir()}/trace_pipe`;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new BpfError(`open ${path}`, err.errno ? -err.errno : Errno.EIO);
  }
  const queue: TraceLine[] = [];
  let waiter: (() => void) | null = null;
  let closed = false;
  let partial = '';
  const buf = Buffer.alloc(64 * 1024);
  const drain = () => {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') break;
        throw new BpfError(`read ${path}`, Errno.EIO, `${code ?? errnoName(Errno.EIO)}`);
      }
      if (n <= 0) break;
      const lines = (partial + buf.toString('utf8', 0, n)).split('\n');
      partial = lines.pop() ?? '';
      for (const raw of lines) {
        const l = parseTraceLine(raw);
        if (l && filter(l)) queue.push(l);
      }
    }
    if (queue.length && waiter) { const w = waiter; waiter = null; w(); }
  };
  // trace_pipe's poll() does not wake reliably for bpf_printk output: read on a short timer instead.
  const timer = setInterval(drain, 50);
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(timer);
    closeSync(fd);
    if (waiter) { const w = waiter; waiter = null; w(); }
  };
  return {
    close,
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          while (queue.length) yield queue.shift()!;
          if (closed) return;
          await new Promise<void>((resolve) => { waiter = resolve; });
        }
      } finally {
        close();
      }
    },
  };
}
