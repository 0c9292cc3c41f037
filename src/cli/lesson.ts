/**
 * The plumbing every lesson loader shares, in libbpf-bootstrap's shape:
 * parse arguments, find the interface, open, configure, load, attach, run
 * until a signal (or --duration), then clean up in reverse order.
 *
 * A lesson loader is a call to runLesson() with what is particular to it.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { BpfObject } from '../object.js';
import { VerifierError } from '../errors.js';
import { resolveInterface, type Interface } from '../netif.js';
import { XDP_MODES, type XdpMode } from '../xdp.js';
import type { Attachment } from '../link.js';
import { setLibbpfLogger, type LibbpfLogLevel } from '../ffi/log.js';
import { isRoot } from '../ffi/sys.js';
import { ensureObject } from './build.js';
import { bindToLauncher } from './lifetime.js';
import { Output } from './output.js';

/** Options every loader accepts. */
export interface CommonOptions {
  mode: XdpMode;
  force: boolean;
  verbose: boolean;
  json: boolean;
  /** Seconds to run before stopping by itself; undefined: until a signal. */
  duration?: number;
  /** Load this object file instead of bpf/build/<lesson>.bpf.o. */
  object?: string;
}

/** What a lesson's hooks get. */
export interface LessonContext<O> {
  /** The parsed options: common ones and the lesson's own. */
  readonly opts: CommonOptions & O;
  /** The interface given on the command line. Throws an Error in a lesson with `iface: false` (it has none). */
  readonly iface: Interface;
  readonly obj: BpfObject;
  /** Aborted on SIGINT/SIGTERM/SIGHUP, at the end of --duration, or when stdout closes. */
  readonly signal: AbortSignal;
  /** Buffered stdout that stops the loader cleanly on EPIPE. */
  readonly out: Output;
  /** A status line on stderr. */
  log(msg: string): void;
  /** Registers an attachment to detach at exit (in reverse order). */
  own<T extends Attachment>(a: T): T;
  /** Registers a clean-up step to run at exit (in reverse order). */
  defer(fn: () => void): void;
  /** Resolves after `ms`, or early when the loader stops. */
  sleep(ms: number): Promise<void>;
  /** Stops the loader (as a signal would). */
  stop(): void;
}

/**
 * A lesson loader's particulars. `R` is what run() hands on to summary()
 * (e.g. the reader whose counts the summary prints).
 */
export interface LessonSpec<O, R = void> {
  /** The lesson's folder under bpf/ (and object name). */
  lesson: string;
  /** One line for --help. */
  description: string;
  /** Whether the lesson emits data, and so takes --json. */
  json?: boolean;
  /**
   * False for a lesson that attaches to no interface (tracing): it takes no
   * `<iface>` argument nor --mode/--force, and must attach in its `attach`
   * hook (ctx.iface throws there). Default true.
   */
  iface?: boolean;
  /**
   * False for a lesson that takes `<iface>` but attaches no XDP program to
   * it (a socket filter): no --mode/--force, and it must attach in its
   * `attach` hook. Default true.
   */
  xdp?: boolean;
  /** Adds the lesson's own options to the command. */
  options?(cmd: Command): void;
  /** Before load: set constants, resize maps. */
  configure?(obj: BpfObject, opts: CommonOptions & O): void;
  /**
   * After load: attach the programs (the default attaches the XDP program
   * named after the lesson to the interface) and fill maps.
   */
  attach?(ctx: LessonContext<O>): void | Promise<void>;
  /** The lesson's body: stream or poll until ctx.signal aborts. */
  run(ctx: LessonContext<O>): Promise<R>;
  /**
   * After a clean run, once everything is detached (and the deferred steps
   * ran) but before the object is closed, so its maps still read: a closing
   * summary, given what run() returned.
   */
  summary?(ctx: LessonContext<O>, result: R): void;
}

/**
 * The longest wait a Node timer holds: 2^31-1 ms (about 24.8 days). Longer
 * delays fire at once (TimeoutOverflowWarning), so no option may ask for one.
 */
export const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/**
 * Parses a positive number of seconds that a timer can wait (at most
 * MAX_TIMER_SECONDS). Throws commander's InvalidArgumentError otherwise.
 */
export function parseSeconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`'${v}' is not a positive number of seconds`);
  if (n > MAX_TIMER_SECONDS) {
    throw new InvalidArgumentError(`'${v}' is more than ${MAX_TIMER_SECONDS} seconds (about 24 days), the longest a timer waits`);
  }
  return n;
}

/** Parses a positive integer. */
export function parsePositiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`'${v}' is not a positive integer`);
  return n;
}

/** Builds the commander program of a lesson (exported for tests of argument parsing). */
export function lessonCommand<O, R>(spec: LessonSpec<O, R>): Command {
  const cmd = new Command(spec.lesson).description(spec.description);
  if (spec.iface !== false) {
    cmd.argument('<iface>', 'network interface to attach to');
    if (spec.xdp !== false) {
      cmd.addOption(new Option('--mode <mode>', 'XDP attach mode').choices(XDP_MODES as string[]).default('skb'))
        .option('--force', 'replace an XDP program another tool attached', false);
    }
  }
  cmd.option('-v, --verbose', "show libbpf's log (with CO-RE relocations)", false)
    .option('--duration <seconds>', 'stop by itself after this long', parseSeconds)
    .option('--object <path>', "load this .bpf.o instead of the lesson's own build")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  if (spec.json) cmd.option('--json', 'machine-readable output (one JSON object per line)', false);
  spec.options?.(cmd);
  return cmd;
}

/** A libbpf log line as --verbose prints it: "libbpf: <message>", "libbpf: warning: <message>" for warnings. */
export function libbpfLogLine(level: LibbpfLogLevel, message: string): string {
  return level === 'warn' ? `libbpf: warning: ${message}` : `libbpf: ${message}`;
}

/** Formats any error as the one line (plus a verifier log) a loader prints. */
export function formatError(e: unknown): string {
  if (e instanceof VerifierError) return `error: ${e.message}`;
  if (e instanceof Error) return `error: ${e.message}`;
  return `error: ${String(e)}`;
}

/**
 * Runs a lesson loader: never returns; exits 0 after a clean stop, 1 after
 * an error (printed as one line on stderr, nothing left attached), 2 for bad
 * arguments.
 */
export async function runLesson<O, R = void>(spec: LessonSpec<O, R>, argv: string[] = process.argv): Promise<never> {
  const cmd = lessonCommand(spec);
  let ifname: string | undefined;
  try {
    cmd.parse(argv);
    ifname = spec.iface === false ? undefined : cmd.args[0];
  } catch (e) {
    const code = (e as { exitCode?: number; code?: string }).code;
    process.exit(code === 'commander.helpDisplayed' || code === 'commander.version' ? 0 : 2);
  }
  const opts = { json: false, mode: 'skb', force: false, ...cmd.opts() } as unknown as CommonOptions & O;
  // Detaching and deferred steps, run in reverse order; the object is closed after them and the summary.
  const cleanups: Array<() => void> = [];
  let attachments = 0;
  let obj: BpfObject | undefined;
  let ran: { result: R } | undefined;
  const ac = new AbortController();
  const out = new Output(() => ac.abort());
  // stderr's reader may be gone (a parent that died, `2>&1 | head`): an
  // unhandled EPIPE there would kill the loader before it detached and unpinned.
  process.stderr.on('error', () => { /* nothing more can be said */ });
  const log = (msg: string) => { try { process.stderr.write(`${msg}\n`); } catch { /* reader gone */ } };
  const onSignal = () => ac.abort();
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
  // Stop as on SIGTERM when the process the user started (npx, tsx, sudo...) goes away.
  const launcher = bindToLauncher((why) => { log(`stopping: ${why}`); ac.abort(); });
  let status = 0;
  let ctx: LessonContext<O> | undefined;
  try {
    if (opts.verbose) setLibbpfLogger((level, m) => log(libbpfLogLine(level, m)), 'debug');
    if (!isRoot()) throw new Error('loading BPF programs needs root: run with sudo');
    if (spec.iface === false && !spec.attach) throw new Error(`lesson ${spec.lesson} has no interface: its spec needs an attach hook`);
    if (spec.xdp === false && !spec.attach) throw new Error(`lesson ${spec.lesson} attaches no XDP program: its spec needs an attach hook`);
    const iface = ifname === undefined ? undefined : resolveInterface(ifname);
    const path = opts.object ?? ensureObject(spec.lesson);
    const o = BpfObject.open(path);
    obj = o;
    spec.configure?.(o, opts);
    o.load();
    ctx = {
      opts, obj: o, out, log,
      get iface(): Interface {
        if (!iface) throw new Error(`lesson ${spec.lesson} attaches to no interface`);
        return iface;
      },
      signal: ac.signal,
      own: (a) => { attachments++; cleanups.push(() => { a.detach(); }); return a; },
      defer: (fn) => { cleanups.push(fn); },
      stop: () => ac.abort(),
      sleep: (ms) => new Promise<void>((resolve) => {
        if (ac.signal.aborted) return resolve();
        const t = setTimeout(done, ms);
        function done() { clearTimeout(t); ac.signal.removeEventListener('abort', done); resolve(); }
        ac.signal.addEventListener('abort', done);
      }),
    };
    const c = ctx;
    if (spec.attach) await spec.attach(c);
    else {
      const link = c.own(o.program(spec.lesson).attachXdp(c.iface.index, { mode: opts.mode, force: opts.force }));
      log(`attached ${link.description}; Ctrl-C to stop`);
    }
    if (opts.duration !== undefined) {
      const t = setTimeout(() => ac.abort(), opts.duration * 1000);
      cleanups.push(() => clearTimeout(t));
    }
    if (!ac.signal.aborted) ran = { result: await spec.run(c) };
  } catch (e) {
    status = 1;
    log(formatError(e));
  } finally {
    const cleanUp = (fn: () => void) => {
      try { fn(); } catch (e) { log(`warning: clean-up: ${(e as Error).message}`); status ||= 1; }
    };
    for (const fn of cleanups.reverse()) cleanUp(fn);
    await out.flush();
    if (ctx && ran && spec.summary && status === 0) {
      try { spec.summary(ctx, ran.result); } catch (e) { log(formatError(e)); }
      await out.flush(); // what the summary wrote to ctx.out
    }
    if (obj) cleanUp(() => obj!.close());
    if (attachments > 0) log('detached');
    launcher.close();
  }
  process.exit(status);
}

/** What pollEvery needs of a loader's context. */
export interface PollContext {
  readonly signal: AbortSignal;
  sleep(ms: number): Promise<void>;
}

/**
 * Calls `tick` every `seconds` until ctx.signal aborts, and once more at the
 * stop for the last partial interval, unless that is under a tenth of an
 * interval after a tick (an almost empty interval says nothing).
 */
export async function pollEvery(ctx: PollContext, seconds: number, tick: () => void): Promise<void> {
  let last = -Infinity;
  while (!ctx.signal.aborted) {
    await ctx.sleep(seconds * 1000);
    const now = performance.now();
    if (ctx.signal.aborted && now - last < seconds * 100) return;
    last = now;
    tick();
  }
}
export { bindToLauncher, launcherKind, type Launcher, type LauncherBinding } from './lifetime.js';
