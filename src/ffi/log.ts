/**
 * libbpf's own log lines, routed to a JS logger. libbpf calls its print
 * callback with a printf format and a va_list; the va_list is handed on,
 * untouched, as a pointer to libc's vsnprintf (a va_list argument is passed by
 * reference on x86_64 and arm64 alike).
 */
import { koffi, libbpf, libc, func } from './native.js';

/** libbpf's log levels, in increasing verbosity. */
export type LibbpfLogLevel = 'warn' | 'info' | 'debug';
const LEVELS: LibbpfLogLevel[] = ['warn', 'info', 'debug'];

/**
 * Receives one libbpf log line, without its trailing newline and without the
 * "libbpf: " prefix most of libbpf's lines carry (the logger knows the source).
 */
export type LibbpfLogger = (level: LibbpfLogLevel, message: string) => void;

const PrintFn = koffi.proto('int libbpf_print_fn_t(int level, void *fmt, void *ap)');
const setPrint = func<(fn: unknown) => unknown>(libbpf, 'void *libbpf_set_print(libbpf_print_fn_t *fn)');
const vsnprintf = func<(buf: Buffer, n: number, fmt: bigint, ap: bigint) => number>(
  libc, 'int vsnprintf(char *buf, size_t n, void *fmt, void *ap)');

let logger: LibbpfLogger | null = null;
let maxLevel = 0;
const recent: string[] = [];
const RECENT_MAX = 64;
const buf = Buffer.alloc(4096);

function onPrint(level: number, fmt: bigint, ap: bigint): number {
  // Warnings are always kept (errors quote them); info/debug only when asked for.
  if (level > maxLevel && level > 0) return 0;
  const n = vsnprintf(buf, buf.length, fmt, ap);
  if (n < 0) return 0;
  const msg = buf.toString('utf8', 0, Math.min(n, buf.length - 1)).replace(/\n+$/, '').replace(/^libbpf: /, '');
  if (level === 0) {
    recent.push(msg);
    if (recent.length > RECENT_MAX) recent.shift();
  }
  if (logger && level <= maxLevel) logger(LEVELS[level] ?? 'debug', msg);
  return n;
}

const callback = koffi.register(onPrint, koffi.pointer(PrintFn));
setPrint(callback);

/**
 * Routes libbpf's log lines at `level` and below to `fn` (or silences them
 * with null). Quiet by default; warnings are still kept for error messages.
 */
export function setLibbpfLogger(fn: LibbpfLogger | null, level: LibbpfLogLevel = 'info'): void {
  logger = fn;
  maxLevel = fn ? LEVELS.indexOf(level) : 0;
}

/** libbpf's warnings (without the "libbpf: " prefix) since the last call to takeLibbpfWarnings(), oldest first. */
export function takeLibbpfWarnings(): string[] {
  return recent.splice(0, recent.length);
}
