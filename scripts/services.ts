/**
 * Add, change, remove and list the services of a running xdp_dnat loader,
 * through the maps it pinned on bpffs.
 *
 *   sudo npx tsx scripts/services.ts list [--json]
 *   sudo npx tsx scripts/services.ts add 10.96.0.11:53/udp=10.244.1.6:5353 [more...]
 *   sudo npx tsx scripts/services.ts change 10.96.0.11:53/udp=10.244.1.7:5353
 *   sudo npx tsx scripts/services.ts remove 10.96.0.11:53/udp [more...]
 *   sudo npx tsx scripts/services.ts stats [--json]
 *
 * Which loader: --pin-dir DIR (what the loader printed), or --iface NAME
 * (the loader's default directory for that interface in this network
 * namespace), or else the only one running. Every command is all or
 * nothing: bad input (address, port, protocol, an address that is not one
 * host's, a backend that is a VIP), a full map, or no loader running prints
 * one `error: ...` line, exits 1 and changes nothing. Bad usage exits 2,
 * --help prints on stdout and exits 0, and a reader that goes away
 * (`| head -1`) ends it quietly with exit 0.
 */
import { Command } from 'commander';
import {
  DNAT_REASONS, ServiceTable, findPinDir, formatBackend, formatService, formatServiceAddr, parseService, parseServiceAddr,
} from '../src/lessons/xdp_dnat.js';
import { isRoot } from '../src/index.js';
import { Output } from '../src/cli/output.js';

// Every line goes through Output: when stdout's reader goes away, the rest is dropped and the script ends normally.
const out = new Output(() => { /* reader gone: nothing more to print */ });
const print = (line: string) => out.line(line);

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
  .configureOutput({ writeOut: (s) => print(s.replace(/\n$/, '')), writeErr: (s) => process.stderr.write(s) });

program.command('list').description('list services, their backends and hits')
  .option('--json', 'one JSON object', false)
  .action((o: { json: boolean }, cmd: Command) => withTable(cmd, (t) => {
    const all = t.list();
    if (o.json) {
      print(JSON.stringify({ pinDir: t.pinDir, services: all.map((e) => ({ service: formatServiceAddr(e), backend: formatBackend(e.backend), packets: e.packets, bytes: e.bytes })) }));
      return;
    }
    if (all.length === 0) print('no services');
    for (const e of all) print(`${formatService(e).padEnd(45)} ${String(e.packets).padStart(10)} packets ${String(e.bytes).padStart(12)} bytes`);
  }));

program.command('add').description('add services (each must be new)')
  .argument('<spec...>', 'VIP:PORT/PROTO=BACKEND:PORT')
  .action((specs: string[], _o: unknown, cmd: Command) => {
    const svcs = specs.map(parseService);
    withTable(cmd, (t) => {
      t.write(svcs, 'add');
      for (const s of svcs) print(`added ${formatService(s)}`);
    });
  });

program.command('change').description("change services' backends (each must exist)")
  .argument('<spec...>', 'VIP:PORT/PROTO=BACKEND:PORT')
  .action((specs: string[], _o: unknown, cmd: Command) => {
    const svcs = specs.map(parseService);
    withTable(cmd, (t) => {
      t.write(svcs, 'change');
      for (const s of svcs) print(`changed ${formatService(s)}`);
    });
  });

program.command('remove').description('remove services (each must exist)')
  .argument('<service...>', 'VIP:PORT/PROTO')
  .action((specs: string[], _o: unknown, cmd: Command) => {
    const addrs = specs.map(parseServiceAddr);
    withTable(cmd, (t) => {
      t.remove(addrs);
      for (const a of addrs) print(`removed ${formatServiceAddr(a)}`);
    });
  });

program.command('stats').description('packets by reason (forwarded, passed, dropped), summed over CPUs')
  .option('--json', 'one JSON object', false)
  .action((o: { json: boolean }, cmd: Command) => withTable(cmd, (t) => {
    const s = t.stats();
    if (o.json) {
      print(JSON.stringify({ pinDir: t.pinDir, stats: s }));
      return;
    }
    for (const r of DNAT_REASONS) print(`${r.padEnd(18)} ${s[r]}`);
  }));

let status = 0;
try {
  program.parse(process.argv);
} catch (e) {
  const code = (e as { code?: string }).code;
  // --help: 0; no command ('commander.help', usage on stderr) or any other usage error: 2.
  if (code?.startsWith('commander.')) status = code === 'commander.helpDisplayed' || code === 'commander.version' ? 0 : 2;
  else {
    console.error(`error: ${(e as Error).message}`);
    status = 1;
  }
}
await out.flush();
process.exit(status);
