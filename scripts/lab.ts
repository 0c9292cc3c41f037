/**
 * The lab from the command line (the lab itself is src/lab/, its commands
 * src/cli/lab.ts, also under `bpfts lab`):
 *
 *   sudo npx tsx scripts/lab.ts up pair <tag>    veth <tag>h (root namespace) <-> <tag>p (namespace lbts-<tag>)
 *                                   [--ipv6]      ... with an IPv6 ULA /64 on both ends too
 *   sudo npx tsx scripts/lab.ts up dnat <tag>    namespaces lbts-<tag>-client, lbts-<tag>-lb, lbts-<tag>-backend
 *   sudo npx tsx scripts/lab.ts down <tag>       removes the pair and dnat labs of <tag>
 *   sudo npx tsx scripts/lab.ts list             the labs that are up
 *   sudo npx tsx scripts/lab.ts clean [prefix]   removes every lab namespace (default: all of the prefix): after crashes
 *
 * --prefix P names the namespaces P<tag>... instead of lbts-<tag>...
 */
import { newCommand, runCommand } from '../src/cli/command.js';
import { tsxCommand } from '../src/cli/hint.js';
import { addLabCommands, type LabJob } from '../src/cli/lab.js';

let job: LabJob | undefined;
const program = newCommand('lab')
  .description('throwaway network namespaces and veth pairs to run the lessons on (needs root)');
addLabCommands(program, (args) => tsxCommand('scripts/lab.ts', args), (j) => { job = j; });

await runCommand(program, async ({ out }) => {
  if (!job) {
    program.outputHelp({ error: true });
    return 2;
  }
  await job(out);
});
