/**
 * Block, allow, remove and list the rules of a running xdp_firewall loader,
 * through the maps it pinned on bpffs; show its top talkers.
 *
 *   sudo npx tsx scripts/firewall.ts block 10.0.0.0/8 [more...]     drop these sources
 *   sudo npx tsx scripts/firewall.ts allow 10.1.0.0/16 [more...]    let these through (inside a blocked prefix)
 *   sudo npx tsx scripts/firewall.ts remove 10.0.0.0/8 [more...]    forget these rules
 *   sudo npx tsx scripts/firewall.ts list [--json]                  rules and per-reason counters
 *   sudo npx tsx scripts/firewall.ts top [--json] [--top N]         sources by packets
 *
 * A bare address is a /32; host bits are cleared (10.1.2.3/8 is 10.0.0.0/8).
 * Which loader: --pin-dir DIR (what the loader printed), or --iface NAME
 * (its default directory for that interface in this network namespace),
 * or else the only one running. Every prefix is checked before any is
 * written; an error prints one `error: ...` line and exits 1; bad usage
 * exits 2; --help prints on stdout and exits 0.
 */
import { newCommand, runCommand, type CommandContext } from '../src/cli/command.js';
import { FW_REASONS, FirewallTable, findPinDir, formatRule, talkers, type FwAction } from '../src/lessons/xdp_firewall.js';
import { normalizeCidr } from '../src/codec.js';
import { isRoot } from '../src/index.js';
import { parsePositiveInt } from '../src/cli/lesson.js';

type Job = (ctx: CommandContext, t: FirewallTable) => void;
let job: Job | undefined;

const program = newCommand('firewall')
  .description('manage the rules of a running xdp_firewall loader (through its pinned maps)')
  .option('--pin-dir <dir>', 'the directory the loader pinned its maps in')
  .option('--iface <name>', "the loader's interface (its default pin directory, in this network namespace)");

function setter(action: FwAction) {
  return (specs: string[]) => {
    const prefixes = specs.map(normalizeCidr); // all checked before any is written
    job = ({ out }, t) => {
      for (const p of prefixes) out.line(`${action === 'drop' ? 'blocked' : 'allowed'} ${t.set(p, action)}`);
    };
  };
}

program.command('block').description('drop packets from these prefixes or addresses')
  .argument('<cidr...>', 'a.b.c.d/len or a.b.c.d').action(setter('drop'));
program.command('allow').description('let these prefixes or addresses through (the longest prefix wins)')
  .argument('<cidr...>', 'a.b.c.d/len or a.b.c.d').action(setter('allow'));

program.command('remove').description('remove the rules of exactly these prefixes')
  .argument('<cidr...>', 'a.b.c.d/len or a.b.c.d')
  .action((specs: string[]) => {
    const prefixes = specs.map(normalizeCidr);
    job = ({ out }, t) => {
      for (const p of prefixes) if (!t.get(p)) t.remove(p); // throws ENOENT before removing anything
      for (const p of prefixes) out.line(`removed ${t.remove(p)}`);
    };
  });

program.command('list').description('the rules, and packets by reason summed over CPUs')
  .option('--json', 'one JSON object', false)
  .action((o: { json: boolean }) => {
    job = ({ out }, t) => {
      const rules = t.rules();
      const stats = t.stats();
      if (o.json) {
        out.line(JSON.stringify({ pinDir: t.pinDir, rules, stats }));
        return;
      }
      if (rules.length === 0) out.line('no rules');
      for (const r of rules) out.line(formatRule(r));
      out.line(FW_REASONS.map((r) => `${r} ${stats[r]}`).join(', '));
    };
  });

program.command('top').description('sources by packets, counters summed over CPUs')
  .option('--json', 'one JSON object', false)
  .option('--top <n>', 'how many', parsePositiveInt, 10)
  .action((o: { json: boolean; top: number }) => {
    job = ({ out }, t) => {
      const top = talkers(t.sources(), new Map(), 0, o.top);
      if (o.json) {
        out.line(JSON.stringify({ pinDir: t.pinDir, top: top.map(({ source, packets, bytes, dropped, droppedBytes }) => ({ source, packets, bytes, dropped, droppedBytes })) }));
        return;
      }
      if (top.length === 0) out.line('no sources yet');
      for (const s of top) out.line(`${s.source.padEnd(15)} ${String(s.packets).padStart(10)} packets ${String(s.bytes).padStart(12)} bytes ${String(s.dropped).padStart(10)} dropped`);
    };
  });

await runCommand(program, async (ctx) => {
  if (!job) {
    program.outputHelp({ error: true });
    return 2;
  }
  if (!isRoot()) throw new Error('opening pinned BPF maps needs root: run with sudo');
  const g = program.opts<{ pinDir?: string; iface?: string }>();
  const t = FirewallTable.openPinned(findPinDir(g));
  try { job(ctx, t); } finally { t.close(); }
});
