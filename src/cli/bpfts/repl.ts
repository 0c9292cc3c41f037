/**
 * `bpfts repl` (and `sudo npm run repl`): Node's REPL with the library in
 * scope, top-level await, tab completion on objects, maps and fields, a
 * history file, and helpers that return the library's own objects:
 *
 *   open(pathOrLesson)   BpfObject, opened and loaded (a lesson name finds bpf/build/<name>.bpf.o)
 *   progs() maps() links() net()   what the kernel has loaded and attached (any tool's)
 *   lab.up(tag?) lab.down()        a veth pair lab to attach to
 *
 * Everything opened through it (objects, attachments made with their
 * programs, labs) is closed on exit: .exit, Ctrl-D, SIGTERM, end of piped
 * input (`bpfts repl < commands.txt`).
 */
import { homedir } from 'node:os';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import repl from 'node:repl';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import type { Command } from 'commander';
import * as lib from '../../index.js';
import { listLinks, listMaps, listNet, listPrograms } from '../../inspect/index.js';
import { pairLab, type PairLab } from '../../lab/index.js';
import { ensureObject } from '../build.js';
import { requireRoot } from './common.js';

/** Where the history goes: $LIBBPF_TS_REPL_HISTORY, else $XDG_STATE_HOME/libbpf-ts/repl_history if XDG_STATE_HOME is set, else ~/.libbpf_ts_history. */
export function historyPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LIBBPF_TS_REPL_HISTORY) return env.LIBBPF_TS_REPL_HISTORY;
  if (env.XDG_STATE_HOME) return join(env.XDG_STATE_HOME, 'libbpf-ts', 'repl_history');
  return join(homedir(), '.libbpf_ts_history');
}

/** The banner: how to open an object, attach it to a lab interface, read a map. */
export const BANNER = [
  'libbpf-ts REPL: the library is in scope (BpfObject, u32, struct, ...); top-level await works; .help for commands.',
  "  const obj = open('packet_counter')             // bpf/build/packet_counter.bpf.o, or any path to a .bpf.o",
  "  const l = await lab.up(); obj.program().attachXdp(l.hostIf)   // a veth pair; ping from its namespace: l.ns",
  "  new Map(obj.map('proto_count', u8, u64))     // read a map; progs(), maps(), links(), net(): the kernel's view",
  'Everything opened here is detached and closed on exit (.exit, Ctrl-D).',
];

const ATTACH_METHODS = ['attachXdp', 'attachTc', 'attachTracepoint', 'attachRawTracepoint', 'attachKprobe', 'attachUprobe', 'attachTracing', 'attach'] as const;

/** What one REPL session opened, to close at its end. */
class Session {
  readonly objects: lib.BpfObject[] = [];
  readonly attachments: lib.Attachment[] = [];
  readonly labs: PairLab[] = [];
  #restore: Array<() => void> = [];

  /** Records every attachment made with a program while the session lasts. */
  trackAttachments(): void {
    const proto = lib.Program.prototype as unknown as Record<string, (...a: unknown[]) => lib.Attachment>;
    for (const m of ATTACH_METHODS) {
      const orig = proto[m];
      const attachments = this.attachments;
      proto[m] = function (this: unknown, ...args: unknown[]) {
        const a = orig.apply(this, args);
        attachments.push(a);
        return a;
      };
      this.#restore.push(() => { proto[m] = orig; });
    }
  }

  open(what: string): lib.BpfObject {
    const path = /[/.]/.test(what) ? what : ensureObject(what);
    const obj = lib.BpfObject.load(path);
    this.objects.push(obj);
    return obj;
  }

  async closeAll(log: (s: string) => void): Promise<void> {
    for (const a of this.attachments.splice(0).reverse()) {
      try { a.detach(); } catch (e) { log(`warning: detach ${a.description}: ${(e as Error).message}`); }
    }
    for (const o of this.objects.splice(0).reverse()) o.close();
    for (const l of this.labs.splice(0).reverse()) {
      try { await l.down(); } catch (e) { log(`warning: lab ${l.tag} down: ${(e as Error).message}`); }
    }
    for (const r of this.#restore.splice(0)) r();
  }
}

/** Options of startRepl. */
export interface ReplOptions {
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream;
  /** A terminal: prompt, banner, colours, line editing (default: whether input and output are TTYs). */
  terminal?: boolean;
  history?: string;
}

/**
 * Runs a REPL until it ends (.exit, Ctrl-D, end of input, SIGTERM), then
 * detaches and closes what it opened. Resolves once everything is closed.
 */
export async function startRepl(opts: ReplOptions = {}): Promise<void> {
  const input = opts.input ?? process.stdin;
  const output = opts.output ?? process.stdout;
  const terminal = opts.terminal ?? Boolean((input as { isTTY?: boolean }).isTTY && (output as { isTTY?: boolean }).isTTY);
  const s = new Session();
  s.trackAttachments();
  const log = (m: string) => { try { process.stderr.write(`${m}\n`); } catch { /* gone */ } };
  if (terminal) output.write(`${BANNER.join('\n')}\n`);
  // Piped input (a script) is fed one line at a time, each once the REPL has
  // finished the last (its prompt is back): otherwise lines after a
  // top-level await would run before the value they wait for exists.
  const feed = terminal ? undefined : new PassThrough();
  const r = repl.start({ prompt: terminal ? 'bpf> ' : '', input: feed ?? input, output, terminal, useGlobal: false, ignoreUndefined: true, preview: terminal });
  if (feed) feedLines(r, input, feed);
  const helpers = {
    open: (what: string) => s.open(what),
    progs: () => listPrograms(),
    maps: () => listMaps(),
    links: () => listLinks(),
    net: (netns?: string) => listNet(netns),
    lab: {
      up: async (tag = 'repl') => { const l = await pairLab(tag); s.labs.push(l); return l; },
      down: async () => { for (const l of s.labs.splice(0).reverse()) await l.down(); },
    },
  };
  Object.assign(r.context, lib, helpers);
  const hist = opts.history ?? historyPath();
  if (terminal) {
    try { mkdirSync(dirname(hist), { recursive: true }); } catch { /* setupHistory reports it */ }
    r.setupHistory(hist, (e) => { if (e) log(`warning: history ${hist}: ${e.message}`); });
  }
  const onTerm = () => r.close();
  process.on('SIGTERM', onTerm);
  process.on('SIGHUP', onTerm);
  await new Promise<void>((resolve) => r.on('exit', () => resolve()));
  process.off('SIGTERM', onTerm);
  process.off('SIGHUP', onTerm);
  await s.closeAll(log);
}

/** Writes the lines of `input` into `feed` one by one, each after the REPL displayed its prompt again; ends `feed` at the end. */
function feedLines(r: repl.REPLServer, input: NodeJS.ReadableStream, feed: PassThrough): void {
  let ready: () => void = () => {};
  let promptShown = true; // repl.start() has shown the first one
  const displayPrompt = r.displayPrompt.bind(r);
  r.displayPrompt = (preserveCursor?: boolean) => { displayPrompt(preserveCursor); promptShown = true; ready(); };
  const waitPrompt = () => new Promise<void>((resolve) => { if (promptShown) resolve(); else ready = resolve; });
  void (async () => {
    for await (const line of createInterface({ input, crlfDelay: Infinity })) {
      await waitPrompt();
      promptShown = false;
      feed.write(`${line}\n`);
    }
    await waitPrompt();
    feed.end();
  })();
}

/** Adds `repl`. */
export function registerRepl(program: Command): void {
  program.command('repl').description('a Node REPL with the library in scope: open(), progs(), maps(), lab.up(); closes what it opened on exit')
    .action(async () => {
      requireRoot('start repl');
      await startRepl();
    });
}
