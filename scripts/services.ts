/**
 * Add, change, remove and list the services of a running xdp_dnat loader,
 * through the maps it pinned on bpffs.
 *
 *   sudo tsx scripts/services.ts list [--json]
 *   sudo tsx scripts/services.ts add 10.96.0.11:53/udp=10.244.1.6:5353 [more...]
 *   sudo tsx scripts/services.ts change 10.96.0.11:53/udp=10.244.1.7:5353
 *   sudo tsx scripts/services.ts remove 10.96.0.11:53/udp [more...]
 *   sudo tsx scripts/services.ts stats
 *
 * Which loader: --pin-dir DIR (what the loader printed), or --iface NAME
 * (the loader's default directory for that interface in this network
 * namespace), or else the only one running. Every command is all or
 * nothing: bad input (address, port, protocol), a full map, or no loader
 * running prints one `error: ...` line, exits 1 and changes nothing.
 */
import { Command } from 'commander';
import {
  DNAT_REASONS, ServiceTable, findPinDir, formatBackend, formatService, formatServiceAddr, parseService, parseServiceAddr,
} from '../src/lessons/xdp_dnat.js';
import { isRoot } from '../src/index.js';

interface Global { pinDir?: string; iface?: string }

function open(cmd: Command): ServiceTable {
  if (!isRoot()) throw new Error('opening pinned BPF maps needs root: run with sudo');
  const g = cmd.optsWithGlobals() as Global;
  return ServiceTable.openPinned(findPinDir({ pinDir: g.pinDir, iface: g.iface }));
}

function withTable(cmd: Command, fn: (t: ServiceTable) => void): void {
  const t = open(cmd);
  try { fn(t); } finally { t.close(); }
}

const program = new Command('services')
  .description('manage the services of a running xdp_dnat loader (through its pinned maps)')
  .option('--pin-dir <dir>', 'the directory the loader pinned its maps in')
  .option('--iface <name>', "the loader's interface (its default pin directory, in this network namespace)")
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

program.command('list').description('list services, their backends and hits')
  .option('--json', 'one JSON object', false)
  .action((o: { json: boolean }, cmd: Command) => withTable(cmd, (t) => {
    const all = t.list();
    if (o.json) {
      console.log(JSON.stringify({ pinDir: t.pinDir, services: all.map((e) => ({ service: formatServiceAddr(e), backend: formatBackend(e.backend), packets: e.packets, bytes: e.bytes })) }));
      return;
    }
    if (all.length === 0) console.log('no services');
    for (const e of all) console.log(`${formatService(e).padEnd(45)} ${String(e.packets).padStart(10)} packets ${String(e.bytes).padStart(12)} bytes`);
  }));

program.command('add').description('add services (each must be new)')
  .argument('<spec...>', 'VIP:PORT/PROTO=BACKEND:PORT')
  .action((specs: string[], _o: unknown, cmd: Command) => {
    const svcs = specs.map(parseService);
    withTable(cmd, (t) => {
      t.write(svcs, 'add');
      for (const s of svcs) console.log(`added ${formatService(s)}`);
    });
  });

program.command('change').description("change services' backends (each must exist)")
  .argument('<spec...>', 'VIP:PORT/PROTO=BACKEND:PORT')
  .action((specs: string[], _o: unknown, cmd: Command) => {
    const svcs = specs.map(parseService);
    withTable(cmd, (t) => {
      t.write(svcs, 'change');
      for (const s of svcs) console.log(`changed ${formatService(s)}`);
    });
  });

program.command('remove').description('remove services (each must exist)')
  .argument('<service...>', 'VIP:PORT/PROTO')
  .action((specs: string[], _o: unknown, cmd: Command) => {
    const addrs = specs.map(parseServiceAddr);
    withTable(cmd, (t) => {
      t.remove(addrs);
      for (const a of addrs) console.log(`removed ${formatServiceAddr(a)}`);
    });
  });

program.command('stats').description('packets by reason (forwarded, passed, dropped), summed over CPUs')
  .action((_o: unknown, cmd: Command) => withTable(cmd, (t) => {
    const s = t.stats();
    for (const r of DNAT_REASONS) console.log(`${r.padEnd(18)} ${s[r]}`);
  }));

try {
  program.parse(process.argv);
} catch (e) {
  const code = (e as { code?: string }).code;
  if (code?.startsWith('commander.')) process.exit(code === 'commander.helpDisplayed' || code === 'commander.help' || code === 'commander.version' ? 0 : 2);
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
}
