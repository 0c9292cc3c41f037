/**
 * Which processes hold a file or a kernel object open, read from /proc:
 * what names the culprit in "busy" errors (trace_pipe's reader, the process
 * that still holds a BPF program). Linux only; processes whose fds cannot
 * be read (gone, or another user's without privilege) are skipped.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** A process that has something open. */
export interface FdHolder {
  pid: number;
  /** Its command name (/proc/PID/comm). */
  comm: string;
}

/**
 * The processes with at least one fd for which `match(target, fdinfo)` is
 * true: `target` is the fd's link (a path, "anon_inode:bpf-prog", ...),
 * `fdinfo()` reads /proc/PID/fdinfo/FD. Never throws.
 */
export function fdHolders(match: (target: string, fdinfo: () => string) => boolean): FdHolder[] {
  const out: FdHolder[] = [];
  let pids: string[];
  try { pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d)); } catch { return out; }
  for (const pid of pids) {
    let fds: string[];
    try { fds = readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    const holds = fds.some((fd) => {
      try {
        return match(readlinkSync(`/proc/${pid}/fd/${fd}`), () => readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      } catch { return false; }
    });
    if (!holds) continue;
    let comm = '?';
    try { comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { /* gone */ }
    out.push({ pid: Number(pid), comm });
  }
  return out;
}

/** "pid 123 (cat), pid 456 (node)". */
export function formatHolders(holders: FdHolder[]): string {
  return holders.map((h) => `pid ${h.pid} (${h.comm})`).join(', ');
}
