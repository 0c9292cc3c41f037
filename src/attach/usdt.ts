/**
 * USDT probes (user statically defined tracepoints: the .note.stapsdt
 * probes of sys/sdt.h's DTRACE_PROBE, in binaries such as node, python,
 * postgres, libc): libbpf finds the probe in the binary's notes, sets a
 * uprobe on each of its sites and hands the program its arguments
 * (BPF_USDT in the program). A bpf_link, like the other tracing attaches.
 */
import { existsSync } from 'node:fs';
import { bpf, type ProgPtr } from '../ffi/libbpf.js';
import { bpfl, UsdtOpts } from '../ffi/loading.js';
import { sizeOf } from '../ffi/structs.js';
import { lastErrno } from '../ffi/native.js';
import { takeLibbpfWarnings } from '../ffi/log.js';
import { BpfError, Errno, NEEDS_PRIVILEGE } from '../errors.js';
import { Link } from '../link.js';

/** The program a USDT attach works on (a Program's internals). */
export interface UsdtProgram { readonly ptr: ProgPtr; readonly name: string }

/** Options of attachUsdt. */
export interface UsdtOptions {
  /** Only in this process (default: every process running the binary). */
  pid?: number;
  /** A value the program reads with bpf_usdt_cookie(ctx). */
  cookie?: bigint;
}

/**
 * Attaches a USDT program (SEC("usdt"), written with BPF_USDT) to probe
 * `provider:name` of the ELF binary or shared library at `binaryPath`, in
 * process `pid` or every process. Needs uprobes (CONFIG_UPROBES) and
 * libbpf >= 0.8. Throws a BpfError: ENOENT "no such file", ENOENT "no USDT
 * probe provider:name in binary" when its notes have none, ESRCH for a
 * process that does not exist.
 */
export function attachUsdt(prog: UsdtProgram, binaryPath: string, provider: string, name: string, opts: UsdtOptions = {}): Link {
  const op = `attach usdt ${binaryPath}:${provider}:${name}`;
  if (!existsSync(binaryPath)) throw new BpfError(op, Errno.ENOENT, `no such file ${binaryPath}`);
  const pid = opts.pid ?? -1;
  const o = { sz: sizeOf(UsdtOpts), usdt_cookie: opts.cookie ?? 0n };
  takeLibbpfWarnings();
  const ptr = bpfl.program_attach_usdt(prog.ptr, pid, binaryPath, provider, name, o);
  const errno = lastErrno();
  if (!ptr) {
    const warn = takeLibbpfWarnings();
    const e = errno || Errno.EINVAL;
    if (e === Errno.ENOENT) {
      const none = warn.some((l) => /no USDT notes section/.test(l)) ? ': it has no USDT notes at all' : ` (its probes: readelf -n ${binaryPath})`;
      throw new BpfError(op, e, `no USDT probe ${provider}:${name} in ${binaryPath}${none}`);
    }
    if (e === Errno.ESRCH) throw new BpfError(op, e, `no process ${pid}`);
    if (e === Errno.EPERM) throw new BpfError(op, e, NEEDS_PRIVILEGE);
    const cause = warn.map((l) => l.replace(/^usdt: /, '')).pop();
    throw new BpfError(op, e, cause);
  }
  let destroyed = false;
  const desc = `usdt ${prog.name} on ${binaryPath}:${provider}:${name} (${pid === -1 ? 'every process' : `pid ${pid}`})`;
  return new Link(bpf.link_fd(ptr), desc, undefined, () => {
    if (destroyed) return;
    destroyed = true;
    bpf.link_destroy(ptr);
  });
}
