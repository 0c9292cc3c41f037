/**
 * Block and unblock addresses in a running ping_blocker loader, through the
 * blocklist it pinned on bpffs.
 *
 *   sudo npx tsx scripts/ping_block.ts block 10.201.0.2 [more...]
 *   sudo npx tsx scripts/ping_block.ts unblock 10.201.0.2 [more...]
 *   sudo npx tsx scripts/ping_block.ts list [--json]
 *
 * Which loader: --pin-dir DIR (what the loader printed), or --iface NAME
 * (the loader's default directory for that interface in this network
 * namespace), or else the only one running. Bad input, a full list or no
 * loader running prints one `error: ...` line and exits 1 (every address is
 * checked before any is written); bad usage exits 2; --help prints on
 * stdout and exits 0; a reader that goes away (`| head -1`) ends it quietly.
 */
import { newCommand, runCommand, type CommandContext } from '../src/cli/command.js';
import { isRoot } from '../src/index.js';
import { Blocklist, findPinDir, parseBlockAddress } from '../src/lessons/ping_blocker.js';

interface Global { pinDir?: string; iface?: string }
type Job = (ctx: CommandContext, list: Blocklist) => void;
let job: Job | undefined;

const program = newCommand('ping_block')
  .description('block and unblock ICMP from and to addresses in a running ping_blocker loader (through its pinned blocklist)')
  .option('--pin-dir <dir>', 'the directory the loader pinned its blocklist in')
  .option('--iface <name>', "the loader's interface (its default pin directory, in this network namespace)");

program.command('block').description('drop ICMP from or to these addresses')
  .argument('<ip...>', 'IPv4 addresses')
  .action((ips: string[]) => {
    const addrs = ips.map(parseBlockAddress);
    job = ({ out }, list) => {
      for (const ip of addrs) out.line(list.block(ip) ? `blocked ${ip}` : `${ip} was already blocked`);
    };
  });

program.command('unblock').description('let ICMP from and to these addresses through again')
  .argument('<ip...>', 'IPv4 addresses')
  .action((ips: string[]) => {
    const addrs = ips.map(parseBlockAddress);
    job = ({ out }, list) => {
      for (const ip of addrs) out.line(list.unblock(ip) ? `unblocked ${ip}` : `${ip} was not blocked`);
    };
  });

program.command('list').description('the blocked addresses and the ICMP packets each caused to be dropped')
  .option('--json', 'one JSON object', false)
  .action((o: { json: boolean }) => {
    job = ({ out }, list) => {
      const all = list.list();
      if (o.json) {
        out.line(JSON.stringify({ pinDir: list.pinDir, blocked: all }));
        return;
      }
      if (all.length === 0) out.line('no blocked addresses');
      for (const e of all) out.line(`${e.ip.padEnd(16)} ${String(e.drops).padStart(10)} dropped`);
    };
  });

await runCommand(program, async (ctx) => {
  if (!job) {
    program.outputHelp({ error: true });
    return 2;
  }
  if (!isRoot()) throw new Error('opening pinned BPF maps needs root: run with sudo');
  const g = program.opts() as Global;
  const list = Blocklist.openPinned(findPinDir({ pinDir: g.pinDir, iface: g.iface }));
  try {
    job(ctx, list);
  } finally {
    list.close();
  }
});
