/**
 * The lab from the command line (the lab itself is src/lab/):
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
import { Argument } from 'commander';
import { newCommand, runCommand, type CommandContext } from '../src/cli/command.js';
import { tsxCommand } from '../src/cli/hint.js';
import {
  DEFAULT_PREFIX, cleanup, cleanupStale, dnatLab, labPrefix, listLabs, pairLab,
} from '../src/lab/index.js';

type Job = (ctx: CommandContext, prefix: string) => Promise<void>;
let job: Job | undefined;

const program = newCommand('lab')
  .description('throwaway network namespaces and veth pairs to run the lessons on (needs root)')
  .option('--prefix <prefix>', "name prefix of the lab's namespaces", DEFAULT_PREFIX);

program.command('up').description('build a lab (removing leftovers of the same tag first)')
  .addArgument(new Argument('<kind>', 'pair: a veth pair with one end in the root namespace; dnat: client -- lb -- backend').choices(['pair', 'dnat']))
  .argument('<tag>', "the lab's name: 1-10 characters of a-z, 0-9, '-'")
  .option('--ipv6', 'pair: give both ends an IPv6 ULA too (without it, IPv6 is off)')
  .action((kind: 'pair' | 'dnat', tag: string, o: { ipv6?: boolean }) => {
    job = async ({ out }, prefix) => {
      if (kind === 'pair') {
        const l = await pairLab(tag, { prefix, ipv6: o.ipv6 });
        const v6 = (ip?: string) => (ip ? `  ${ip}/64` : '');
        out.line(`pair lab '${l.tag}' is up:`);
        out.line(`  host  ${l.hostIf}  ${l.hostIp}/30${v6(l.hostIp6)}  ${l.hostMac}  ifindex ${l.hostIfindex}  (root namespace)`);
        out.line(`  peer  ${l.peerIf}  ${l.peerIp}/30${v6(l.peerIp6)}  ${l.peerMac}  (namespace ${l.ns})`);
        out.line(`  try:  sudo ip netns exec ${l.ns} ping -c 3 ${l.hostIp}`);
        if (l.hostIp6) out.line(`        sudo ip netns exec ${l.ns} ping -6 -c 3 ${l.hostIp6}`);
      } else {
        if (o.ipv6) throw new Error('lab up dnat: --ipv6 is for pair labs only');
        const l = await dnatLab(tag, { prefix });
        out.line(`dnat lab '${l.tag}' is up:`);
        out.line(`  client   ${l.client}  ${l.clientIf} ${l.clientIp}/24  routes ${l.vipNet} and default via ${l.lbClientIp}`);
        out.line(`  lb       ${l.lb}  ${l.lbClientIf} ${l.lbClientIp}/24  ${l.lbBackendIf} ${l.lbBackendIp}/24  (forwarding)`);
        out.line(`  backend  ${l.backend}  ${l.backendIf} ${l.backendIp}/24  default via ${l.lbBackendIp}`);
        out.line(`  try:  sudo ip netns exec ${l.client} ping -c 3 ${l.backendIp}`);
      }
      out.line(`  down: ${tsxCommand('scripts/lab.ts', [...(prefix === DEFAULT_PREFIX ? [] : ['--prefix', prefix]), 'down', tag])}`);
    };
  });

program.command('down').description('remove the pair and the dnat lab of <tag>')
  .argument('<tag>', "the lab's name")
  .action((tag: string) => {
    job = async ({ out }, prefix) => {
      const removed = await cleanup(tag, { prefix });
      out.line(removed.length ? `removed ${removed.join(' ')}` : `nothing of lab '${tag}' to remove`);
    };
  });

program.command('list').description('the labs that are up')
  .action(() => {
    job = async ({ out }, prefix) => {
      const labs = await listLabs({ prefix });
      for (const l of labs) out.line(`${l.kind} ${l.tag}: ${l.namespaces.join(' ')}${l.hostIf ? ` (host interface ${l.hostIf})` : ''}`);
      if (labs.length === 0) out.line('no labs');
    };
  });

program.command('clean').description('remove every lab whose names start with [match] (default: the prefix), also labs in use: after crashes')
  .argument('[match]', 'a name prefix that starts with the lab prefix, e.g. lbts-demo')
  .action((match: string | undefined) => {
    job = async ({ out }, prefix) => {
      const removed = await cleanupStale(match, { prefix });
      out.line(removed.length ? `removed ${removed.join(' ')}` : 'nothing to remove');
    };
  });

await runCommand(program, async (ctx) => {
  if (!job) {
    program.outputHelp({ error: true });
    return 2;
  }
  await job(ctx, labPrefix({ prefix: program.opts<{ prefix: string }>().prefix }));
});
