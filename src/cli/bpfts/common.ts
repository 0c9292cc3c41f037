/**
 * What every `bpfts` noun shares: the program's conventions.
 *
 * - Every listing takes `--json`: one JSON document on stdout (like `bpftool -j`).
 * - Exit status: 0 ok; 1 the operation failed (including "not root": the
 *   kernel refused, EPERM, and "not found": ENOENT); 2 bad usage (unknown
 *   command or option, a missing or malformed argument).
 * - An error is one line on stderr: `bpfts: <verb> <object>: <cause> (<ENAME>)`.
 * - stdout goes through Output, so `bpfts prog list | head -1` ends cleanly.
 */
import { Command, CommanderError, Option } from 'commander';
import { Output } from '../output.js';
import { BpfError, Errno } from '../../errors.js';
import { isRoot } from '../../ffi/sys.js';

/** A malformed argument: exit status 2, like commander's own usage errors. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Exit statuses. */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2 } as const;

let output: Output | undefined;
/** The process's stdout, buffered; writing after its reader went away does nothing. */
export function out(): Output {
  output ??= new Output(() => { /* the reader is gone: the rest is dropped, the command still ends normally */ });
  return output;
}

/** Options every listing gets. */
export interface ListingOptions { json?: boolean }

/** Adds `--json` to a listing command. */
export function withJson(cmd: Command): Command {
  return cmd.addOption(new Option('--json', 'one JSON document on stdout (like bpftool -j)').default(false));
}

/** Prints `doc` as one JSON document. */
export function printJson(doc: unknown): void {
  out().line(JSON.stringify(doc));
}

/**
 * Throws the one-line BpfError (EPERM, exit 1) when this process is not
 * root: `op` says what needed it, e.g. "list progs".
 */
export function requireRoot(op: string): void {
  if (!isRoot()) throw new BpfError(op, Errno.EPERM, 'needs root: run it with sudo');
}

/** Parses a positive integer argument (an id); throws a UsageError naming `what`. */
export function parseId(v: string, what: string): number {
  const s = v.replace(/^id:/, '');
  const n = Number(s);
  if (!/^\d+$/.test(s) || n <= 0 || n > 0xffffffff) throw new UsageError(`'${v}' is not a ${what} id`);
  return n;
}

/** The one line an error prints ("bpfts: " and its message's first line; a verifier log keeps its lines). */
export function errorLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const first = e instanceof BpfError && e.name === 'VerifierError' ? msg : msg.split('\n')[0];
  return `bpfts: ${first}`;
}

function say(line: string): void {
  try { process.stderr.write(`${line}\n`); } catch { /* stderr is gone */ }
}

/**
 * Parses `argv` with `program` (made with newCommand: actions run during the
 * parse) and returns the exit status: 0, 1 after an error (printed as one
 * line), 2 after bad usage (commander's message, or a UsageError's).
 * stdout is flushed before it returns.
 */
export async function runBpfts(program: Command, argv: string[] = process.argv): Promise<number> {
  process.stderr.on('error', () => { /* stderr's reader is gone */ });
  let status: number = EXIT.OK;
  try {
    await program.parseAsync(argv);
    // an action that reports its own error line sets the status it wants
    if (typeof process.exitCode === 'number' && process.exitCode !== 0) status = process.exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      status = e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    } else if (e instanceof UsageError) {
      say(`bpfts: ${e.message}`);
      status = EXIT.USAGE;
    } else {
      say(errorLine(e));
      status = EXIT.FAILED;
    }
  }
  await out().flush();
  return status;
}
