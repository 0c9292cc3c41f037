/**
 * Errors raised by the typed API: short "verb object: cause" messages that
 * carry the errno, and a verifier rejection that carries the verifier's log.
 */
import { Errno, errnoMessage, errnoName, errnoOf } from './ffi/errno.js';

export { Errno };

/** A failed libbpf or kernel operation. */
export class BpfError extends Error {
  override name = 'BpfError';
  /** Positive errno value (ENOENT = 2). */
  readonly errno: number;
  /** Symbolic errno ("ENOENT"). */
  readonly code: string;
  /** What was being done, e.g. "load object hello.bpf.o". */
  readonly op: string;

  constructor(op: string, errno: number, detail?: string) {
    const e = Math.abs(errno);
    super(`${op}: ${detail ?? errnoMessage(e)} (${errnoName(e)})`);
    this.op = op;
    this.errno = e;
    this.code = errnoName(e);
  }
}

/** A program the kernel's verifier rejected; `log` is the verifier's whole log. */
export class VerifierError extends BpfError {
  override name = 'VerifierError';
  /** The verifier log, line by line. */
  readonly log: string[];
  /** The program's name. */
  readonly program: string;

  /** True when the log filled its buffer: its end (or start) is missing. */
  readonly truncated: boolean;

  constructor(op: string, program: string, errno: number, log: string, truncated = false) {
    const lines = log.split('\n').filter((l) => l.length > 0);
    const note = truncated ? ' (log truncated: it filled its buffer; raise logSize)' : '';
    super(op, errno, `verifier rejected program ${program}${note}:\n  ${lastRelevant(lines).join('\n  ')}`);
    this.log = lines;
    this.program = program;
    this.truncated = truncated;
  }
}

/**
 * The cause given for EPERM from the bpf() syscall: the privileges it needs
 * (libbpf's own hint about RLIMIT_MEMLOCK is misleading on kernels >= 5.11,
 * which account BPF memory to memory cgroups, not to that limit).
 */
export const NEEDS_PRIVILEGE = 'operation not permitted: BPF needs root (CAP_BPF, plus CAP_NET_ADMIN for XDP/tc or CAP_PERFMON for tracing; or CAP_SYS_ADMIN)';

/**
 * The BpfError of a failed bpf() call: EPERM says which privileges are
 * missing (NEEDS_PRIVILEGE), other errnos give libc's message or `detail`.
 */
export function bpfCallError(op: string, errno: number, detail?: string): BpfError {
  return new BpfError(op, errno, Math.abs(errno) === Errno.EPERM ? NEEDS_PRIVILEGE : detail);
}

/**
 * The log lines worth showing: the last instructions and the verifier's
 * complaint, without the trailing statistics.
 */
export function lastRelevant(lines: string[], n = 6): string[] {
  let end = lines.length;
  while (end > 0 && /^(processed \d+ insns|verification time|stack depth|mark_precise|-- END PROG LOAD LOG --)/.test(lines[end - 1])) end--;
  return lines.slice(Math.max(0, end - n), end);
}

/**
 * Throws a BpfError when a libbpf call returned -errno (or a negative value
 * with errno set: pass that errno, it wins over the return value), and
 * returns the non-negative result otherwise.
 */
export function check(ret: number, op: string, errno?: number): number {
  if (ret >= 0) return ret;
  throw new BpfError(op, errno || errnoOf(ret) || 1);
}
