/** `bpfts lab up|down|list|clean`: the lab (src/lab), as scripts/lab.ts has it. Needs root. */
import type { Command } from 'commander';
import { addLabCommands } from '../lab.js';
import { out, requireRoot } from './common.js';

/** Adds `lab`. */
export function registerLab(program: Command): void {
  const lab = program.command('lab').description('throwaway network namespaces and veth pairs to run the lessons on (needs root)');
  addLabCommands(lab, (args) => `sudo npx bpfts lab ${args.join(' ')}`, async (job) => {
    requireRoot('lab');
    await job(out());
  });
}
