/**
 * What every script's entry point shares (the demo, scripts/lab.ts, the
 * benchmark): parse the arguments with commander (--help on stdout, exit 0;
 * bad usage on stderr, exit 2), run, print an error as one line (exit 1),
 * and end cleanly when the reader of stdout goes away (EPIPE) or, when
 * asked, on SIGINT/SIGTERM/SIGHUP and when its launcher (npx, tsx, sudo)
 * dies, so the command can tear down what it built before it exits.
 */
import { constants } from 'node:os';
import { Command, CommanderError } from 'commander';
import { Output } from './output.js';
import { bindToLauncher } from './lifetime.js';

/** Why a command was asked to stop early. */
export type StopReason = 'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'EPIPE' | 'exception';

/** What a command's body gets. */
export interface CommandContext {
  /** Buffered stdout; on EPIPE it drops what is written and aborts `signal`. */
  readonly out: Output;
  /** Aborted when stdout's reader goes away, on an uncaught exception, and (with `signals`) on SIGINT/SIGTERM/SIGHUP. */
  readonly signal: AbortSignal;
  /** What aborted `signal`, once it is. */
  readonly stopReason: StopReason | undefined;
  /** A line on stderr (never throws, even when stderr is gone). */
  log(msg: string): void;
}

/** Options of runCommand. */
export interface RunCommandOptions {
  /** Turn SIGINT/SIGTERM/SIGHUP into an abort of ctx.signal instead of dying at once (the body must then end by itself). */
  signals?: boolean;
  /** The arguments, as process.argv (default). */
  argv?: string[];
}

/**
 * A commander program set up for runCommand: errors are thrown, not exited
 * on, and help goes to stdout. Subcommands added with .command() inherit it.
 */
export function newCommand(name: string): Command {
  return new Command(name)
    .exitOverride()
    .configureOutput({ writeOut: (s) => { writeQuietly(process.stdout, s); }, writeErr: (s) => { writeQuietly(process.stderr, s); } });
}

function writeQuietly(stream: NodeJS.WriteStream, s: string): void {
  try { stream.write(s); } catch { /* the reader is gone */ }
}

/** The exit status after a stop by `reason`: 128 + the signal's number (130 for SIGINT), else 0 (EPIPE) or 1 (exception). */
export function exitStatusFor(reason: StopReason): number {
  if (reason === 'EPIPE') return 0;
  if (reason === 'exception') return 1;
  return 128 + constants.signals[reason];
}

/**
 * Parses `argv` with `cmd` (made by newCommand; its actions may be async and
 * run during the parse). Returns the exit status when the command must end
 * here: 0 after --help, 2 after a usage error (commander printed it).
 * Throws what an action threw.
 */
export async function parseCommand(cmd: Command, argv: string[] = process.argv): Promise<number | undefined> {
  try {
    await cmd.parseAsync(argv);
    return undefined;
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0) return 0;
    return 2;
  }
}

/**
 * Runs a script: parses the arguments (see parseCommand), then `main`, and
 * exits with what it returns (0 when nothing). An error thrown by `main`
 * prints `error: <message>` on stderr and exits 1. Never returns.
 */
export async function runCommand(
  cmd: Command,
  main: (ctx: CommandContext) => Promise<number | void>,
  opts: RunCommandOptions = {},
): Promise<never> {
  process.stderr.on('error', () => { /* stderr's reader is gone: nothing more to say */ });
  const log = (msg: string) => writeQuietly(process.stderr, `${msg}\n`);
  let status: number | undefined;
  try {
    status = await parseCommand(cmd, opts.argv);
  } catch (e) {
    log(`error: ${(e as Error).message}`);
    process.exit(1);
  }
  if (status !== undefined) process.exit(status);

  const ac = new AbortController();
  let stopReason: StopReason | undefined;
  const stop = (why: StopReason) => {
    if (ac.signal.aborted) return;
    stopReason = why;
    ac.abort(new Error(why));
  };
  const out = new Output(() => stop('EPIPE'));
  if (opts.signals) for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => stop(s));
  // Never outlive the launcher (npx, tsx, sudo): its death counts as a
  // SIGTERM, which the handler above turns into a stop, or (without
  // `signals`) ends the process at once.
  const launcher = bindToLauncher((why) => {
    log(`stopping: ${why}`);
    if (opts.signals) stop('SIGTERM');
    else process.kill(process.pid, 'SIGTERM');
  });
  let crashed = false;
  const onCrash = (e: unknown) => {
    crashed = true;
    log(`error: ${e instanceof Error ? e.message : String(e)}`);
    stop('exception');
  };
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  const ctx: CommandContext = { out, signal: ac.signal, log, get stopReason() { return stopReason; } };
  let code: number;
  try {
    code = (await main(ctx)) ?? 0;
  } catch (e) {
    log(`error: ${(e as Error).message}`);
    code = 1;
  }
  if (crashed) code ||= 1;
  launcher.close();
  await out.flush();
  process.exit(code);
}
