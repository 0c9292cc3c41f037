/**
 * A loader never outlives the process the user started. The README's
 * commands start a chain of launchers: `sudo npx tsx x.ts` is sudo → npm exec
 * → sh -c → tsx (a node running tsx's cli) → node (the loader). Killing any
 * of them (SIGKILL, or a SIGTERM/SIGHUP that the launcher does not pass on)
 * used to leave the loader running, re-parented to PID 1, with its programs
 * attached.
 *
 * bindToLauncher() ties the loader to that chain:
 * - prctl(PR_SET_PDEATHSIG, SIGTERM): the kernel sends SIGTERM when the
 *   direct parent exits, so the loader stops exactly as on SIGTERM;
 * - the race (the parent died before the prctl) is checked with getppid();
 * - the death signal covers only the direct parent, so the parent and, while
 *   they are launchers (tsx's cli, npm/npx, the `sh -c` npm runs, sudo), its
 *   ancestors are watched through pidfds on the event loop; the walk stops
 *   at the first process that is not a launcher (the user's shell, a
 *   supervisor, the demo), which answers for its own lifetime.
 */
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { BpfError } from '../errors.js';
import { Errno } from '../ffi/errno.js';
import { closeFd, parentPid, pidfdOpen, setParentDeathSignal, watchReadable, type FdWatch } from '../ffi/sys.js';

/** The parent at the earliest moment this process can see it (module load), for the race check. */
const parentAtStart = process.ppid;

/** A launcher process being watched. */
export interface Launcher {
  readonly pid: number;
  /** What it is: 'tsx', 'npm exec', 'sh -c', 'sudo', or the parent's name. */
  readonly what: string;
}

/** What bindToLauncher() set up; close() is idempotent. */
export interface LauncherBinding {
  /** The processes watched, the direct parent first. */
  readonly launchers: readonly Launcher[];
  /** Stops watching (the parent-death signal stays set). */
  close(): void;
}

const base = (s: string) => s.slice(s.lastIndexOf('/') + 1);

/**
 * Which kind of launcher a command line is (argv as in /proc/<pid>/cmdline),
 * or undefined for anything else. Launchers are the processes that only run
 * a command for the user: sudo/doas, npm/npx (which retitle themselves
 * "npm exec ..."), `sh -c`, and node running tsx's cli or npm's.
 */
export function launcherKind(argv: readonly string[]): string | undefined {
  if (argv.length === 0) return undefined;
  const title = argv[0].split(' ')[0];
  const b0 = base(title);
  if (b0 === 'sudo' || b0 === 'doas') return b0;
  if (b0 === 'npm' || b0 === 'npx') return argv[0].startsWith('npm exec') ? 'npm exec' : b0;
  if (b0 === 'tsx') return 'tsx';
  if (/^(ba|da)?sh$/.test(b0) && argv[1] === '-c') return 'sh -c';
  if (/^node(js)?$/.test(b0) && argv.length > 1) {
    const script = argv[1];
    if (base(script) === 'tsx' || /\/tsx\/dist\/cli\.m?js$/.test(script)) return 'tsx';
    if (/^np[mx](-cli\.js)?$/.test(base(script))) return base(script).slice(0, 3);
  }
  return undefined;
}

/** A process as /proc shows it. */
export interface ProcInfo {
  /** Its parent's pid. */
  ppid: number;
  /** Its command line (a retitled process, like npm, has it all in argv[0]). */
  argv: string[];
  /** Its name (at most 15 characters). */
  comm: string;
  /** Its state letter: R, S, D, Z (exited, not yet reaped)... */
  state: string;
}

/** Reads /proc/<pid>/stat and cmdline; undefined once the process is gone. */
export function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const [state, ppid] = stat.slice(close + 2).split(' ');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    return { ppid: Number(ppid), argv, comm, state };
  } catch {
    return undefined;
  }
}

/** True when tsx's cli started this process (its preflight is loaded): then the parent must be that cli. */
function startedByTsxCli(): boolean {
  return process.execArgv.some((a) => /\/tsx\/dist\/preflight\.cjs$/.test(a));
}

/**
 * Ties this process to the launchers that started it: `onGone(why)` is called
 * once, asynchronously, when one of them exits, or already has (the race
 * between fork and this call); the direct parent's exit also delivers SIGTERM
 * (PR_SET_PDEATHSIG), so a program that handles SIGTERM stops the same way
 * without onGone. Call it once, early, from the main thread. The watches do
 * not keep the event loop alive.
 *
 * Throws a BpfError when the kernel refuses the prctl. Needs Linux 5.3
 * (pidfd_open); on an older kernel only the direct parent is covered.
 */
export function bindToLauncher(onGone: (why: string) => void): LauncherBinding {
  const watches: FdWatch[] = [];
  const fds: number[] = [];
  const launchers: Launcher[] = [];
  let fired = false;
  let closed = false;
  const gone = (why: string) => {
    if (fired || closed) return;
    fired = true;
    setImmediate(() => { if (!closed) onGone(why); });
  };
  const binding: LauncherBinding = {
    launchers,
    close() {
      if (closed) return;
      closed = true;
      for (const w of watches) w.close();
      for (const fd of fds) closeFd(fd);
    },
  };

  const err = setParentDeathSignal(constants.signals.SIGTERM);
  if (err !== 0) throw new BpfError('set parent-death signal', err);
  const ppid = parentPid();
  if (ppid !== parentAtStart) {
    gone(`the process that started this one (pid ${parentAtStart}) has exited`);
    return binding;
  }
  // Started by tsx's cli, whose parent is no longer a tsx: it died before this process could see it.
  if (startedByTsxCli() && launcherKind(procInfo(ppid)?.argv ?? []) !== 'tsx') {
    gone(`tsx, which started this process, has exited`);
    return binding;
  }
  let pid = ppid;
  for (let depth = 0; pid > 1 && depth < 16; depth++) {
    const opened = pidfdOpen(pid);
    if ('errno' in opened) {
      if (opened.errno === Errno.ESRCH) gone(`launcher (pid ${pid}) has exited`);
      break; // ENOSYS (kernel < 5.3): the parent-death signal still covers the parent
    }
    // Read /proc only now: with the pidfd held, a reused pid cannot be mistaken for the launcher
    // (if the launcher is gone, the pidfd is already readable).
    const info = procInfo(pid);
    const kind = info && launcherKind(info.argv);
    if (depth > 0 && !kind) { closeFd(opened.fd); break; }
    const launcher: Launcher = { pid, what: kind ?? info?.comm ?? 'parent' };
    fds.push(opened.fd);
    launchers.push(launcher);
    const w = watchReadable(opened.fd, () => {
      w.pause(); // level-triggered: an exited process stays readable
      gone(`launcher ${launcher.what} (pid ${launcher.pid}) has exited`);
    });
    w.unref();
    watches.push(w);
    if (!kind) break; // a parent that is not a launcher (a supervisor, the demo) answers for itself
    pid = info.ppid;
  }
  if (parentPid() !== ppid) gone(`the process that started this one (pid ${ppid}) has exited`);
  return binding;
}
