/**
 * bpf_printk output: the kernel's trace_pipe, read without blocking the event
 * loop, mounting tracefs when it is not mounted (as inside `ip netns exec`).
 *
 * trace_pipe is one queue for the whole machine, and recent kernels let one
 * reader open it at a time: a second open fails with EBUSY, which
 * openTracePipe() reports naming the process that holds it.
 */
import { closeSync, constants, existsSync, mkdirSync, openSync, readSync } from 'node:fs';
import { isTracefs, mountFs } from './ffi/sys.js';
import { BpfError, Errno } from './errors.js';
import { fdHolders, formatHolders, type FdHolder } from './procfs.js';

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
 * The processes that have `path` open (from /proc/PID/fd; processes whose
 * fds cannot be read are skipped). Never throws.
 */
export function fileHolders(path: string): FdHolder[] {
  return fdHolders((target) => target === path);
}

/** Where trace_pipe is (tracefs mounted if needed). Throws a BpfError as tracefsDir(). */
export function tracePipePath(): string {
  return `${tracefsDir()}/trace_pipe`;
}

/** Options of openTracePipe. */
export interface TracePipeOptions {
  /** Read this file instead of the tracefs trace_pipe (for tests). */
  path?: string;
}

/**
 * Streams bpf_printk lines from trace_pipe, keeping those `filter` accepts.
 * Throws a BpfError when trace_pipe cannot be opened: EBUSY, naming the
 * process that reads it, when another reader has it open. A read error
 * later ends the iteration by throwing that error (as a BpfError) from the
 * iterator.
 */
export function openTracePipe(filter: (l: TraceLine) => boolean = () => true, options: TracePipeOptions = {}): TracePipe {
  const path = options.path ?? tracePipePath();
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const errno = err.errno ? Math.abs(err.errno) : Errno.EIO;
    if (errno === Errno.EBUSY) {
      const who = fileHolders(path);
      throw new BpfError(`open ${path}`, errno, `another process is reading it (${who.length ? formatHolders(who) : 'not found in /proc/*/fd: maybe in another PID namespace'}); the kernel allows one reader: stop that one first`);
    }
    throw new BpfError(`open ${path}`, errno);
  }
  const queue: TraceLine[] = [];
  let waiter: (() => void) | null = null;
  let closed = false;
  let failure: BpfError | undefined;
  let partial = '';
  const buf = Buffer.alloc(64 * 1024);
  const drain = () => {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK') break;
        // Not thrown from the timer (that would kill the process): the iterator throws it.
        failure = new BpfError(`read ${path}`, err.errno ? Math.abs(err.errno) : Errno.EIO);
        close();
        return;
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
          if (failure) throw failure;
          if (closed) return;
          await new Promise<void>((resolve) => { waiter = resolve; });
        }
      } finally {
        close();
      }
    },
  };
}
