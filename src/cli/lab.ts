/**
 * The lab's commands (up, down, list, clean), shared by scripts/lab.ts and
 * `bpfts lab`: each adds them to its own commander command, which carries
 * the `--prefix` option, and decides how to run what the parse picked.
 */
import { Argument, Option, type Command } from 'commander';
import {
  DEFAULT_PREFIX, cleanup, cleanupStale, dnatLab, labPrefix, listLabs, pairLab,
} from '../lab/index.js';

/** Where a lab command's output goes. */
export interface LabOut { line(s: string): void }
/** What a parsed lab command does (it checks the prefix when it runs: a bad one throws). */
export type LabJob = (out: LabOut) => Promise<void>;

/**
 * Adds the lab's subcommands and the `--prefix` option to `cmd`. Each
 * action hands its job to `run` (which may run it at once, or keep it for
 * later). `downHint(args)` is the command line printed after `up` to take
 * the lab down again, given the arguments of `down`.
 */
export function addLabCommands(cmd: Command, downHint: (args: string[]) => string, run: (job: LabJob) => void | Promise<void>): Command {
  cmd.option('--prefix <prefix>', "name prefix of the lab's namespaces", DEFAULT_PREFIX);
  const prefixOf = () => labPrefix({ prefix: cmd.opts<{ prefix: string }>().prefix });
  const go = (job: LabJob) => run(job);

  cmd.command('up').description('build a lab (removing leftovers of the same tag first)')
    .addArgument(new Argument('<kind>', 'pair: a veth pair with one end in the root namespace; dnat: client -- lb -- backend').choices(['pair', 'dnat']))
    .argument('<tag>', "the lab's name: 1-10 characters of a-z, 0-9, '-'")
    .option('--ipv6', 'pair: give both ends an IPv6 ULA too (without it, IPv6 is off)')
    .action((kind: 'pair' | 'dnat', tag: string, o: { ipv6?: boolean }) => go(async (out) => {
      const prefix = prefixOf();
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
      out.line(`  down: ${downHint([...(prefix === DEFAULT_PREFIX ? [] : ['--prefix', prefix]), 'down', tag])}`);
    }));

  cmd.command('down').description('remove the pair and the dnat lab of <tag>')
    .argument('<tag>', "the lab's name")
    .action((tag: string) => go(async (out) => {
      const prefix = prefixOf();
      const removed = await cleanup(tag, { prefix });
      out.line(removed.length ? `removed ${removed.join(' ')}` : `nothing of lab '${tag}' to remove`);
    }));

  cmd.command('list').description('the labs that are up')
    .addOption(new Option('--json', 'one JSON document').default(false))
    .action((o: { json: boolean }) => go(async (out) => {
      const prefix = prefixOf();
      const labs = await listLabs({ prefix });
      if (o.json) return out.line(JSON.stringify(labs));
      for (const l of labs) out.line(`${l.kind} ${l.tag}: ${l.namespaces.join(' ')}${l.hostIf ? ` (host interface ${l.hostIf})` : ''}`);
      if (labs.length === 0) out.line('no labs');
    }));

  cmd.command('clean').description('remove every lab whose names start with [match] (default: the prefix), also labs in use: after crashes')
    .argument('[match]', 'a name prefix that starts with the lab prefix, e.g. lbts-demo')
    .action((match: string | undefined) => go(async (out) => {
      const prefix = prefixOf();
      const removed = await cleanupStale(match, { prefix });
      out.line(removed.length ? `removed ${removed.join(' ')}` : 'nothing to remove');
    }));
  return cmd;
}
