/**
 * bpfts: the project's bpftool-grade command, on the library's own API.
 *
 *   sudo npx bpfts prog list [--json]          sudo npx bpfts link list
 *   sudo npx bpfts prog show <id|name|path>    sudo npx bpfts net list [--netns NAME]
 *   sudo npx bpfts run <lesson> <iface> ...    sudo npx bpfts lab up pair <tag>
 *   sudo npx bpfts repl
 *
 * One file per noun in this folder, each exporting register<Noun>(program);
 * the conventions (--json, exit statuses, one-line errors) are in common.ts.
 */
import type { Command } from 'commander';
import { newCommand } from '../command.js';
import { runBpfts } from './common.js';
import { registerProg } from './prog.js';
import { registerLink } from './link.js';
import { registerNet } from './net.js';
import { registerRepl } from './repl.js';
import { registerRun } from './run.js';
import { registerLab } from './lab.js';
import { registerMap } from './map.js';
import { registerGen } from './gen.js';

const nouns: Array<(program: Command) => void> = [registerProg, registerMap, registerLink, registerNet, registerGen, registerRun, registerLab, registerRepl];

/** The `bpfts` program with every noun registered (exported for tests of its parsing). */
export function bpftsProgram(): Command {
  const program = newCommand('bpfts')
    .enablePositionalOptions() // so `run` can pass options through to a lesson
    .description('inspect and drive eBPF from TypeScript: programs, maps, links, network hooks, lessons, a REPL (most commands need root)')
    .addHelpText('after', '\nExit status: 0 ok, 1 the operation failed (also: not root, not found), 2 bad usage.\nErrors are one line on stderr: "bpfts: <verb> <object>: <cause> (<ENAME>)".');
  for (const register of nouns) register(program);
  return program;
}

process.exit(await runBpfts(bpftsProgram()));
