/**
 * Add, change, remove and list the services of a running xdp_dnat loader,
 * through the maps it pinned on bpffs.
 *
 *   sudo npx tsx scripts/services.ts list [--json]
 *   sudo npx tsx scripts/services.ts add 10.96.0.11:53/udp=10.244.1.6:5353 [more...]
 *   sudo npx tsx scripts/services.ts change 10.96.0.11:53/udp=10.244.1.7:5353
 *   sudo npx tsx scripts/services.ts set 10.96.0.11:53/udp=10.244.1.7:5353
 *   sudo npx tsx scripts/services.ts remove 10.96.0.11:53/udp [more...]
 *   sudo npx tsx scripts/services.ts stats [--json]
 *
 * Services are in the load balancer's text form (src/lb/model.ts):
 * VIP:PORT/PROTO=IP:PORT[*WEIGHT],IP:PORT... `list` shows each service's
 * backends with their weight and their share of the service's new flows.
 * The writes go straight into the running loader's maps: new flows pick
 * from the new backends at once, established connections keep theirs
 * unless their backend was removed.
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
import { DNAT_REASONS } from '../src/lessons/xdp_dnat.js';
import { findPinDir } from '../src/lessons/xdp_dnat/pins.js';
import { ServiceTable, type ServiceEntry } from '../src/lb/table.js';
import { openPinnedFlowCache, openPinnedStats, readDnatStats } from '../src/lb/dataplane.js';
import { describeService, formatServiceAddr, parseService, parseServiceAddr } from '../src/lb/model.js';
import { isRoot } from '../src/index.js';
import { Output } from '../src/cli/output.js';

// Every line goes through Output: when stdout's reader goes away, the rest is dropped and the script ends normally.
const out = new Output(() => { /* reader gone: nothing more to print */ });
const print = (line: string) => out.line(line);

interface Global { pinDir?: string; iface?: string }

function pinDir(cmd: Command): string {
  if (!isRoot()) throw new Error('opening pinned BPF maps needs root: run with sudo');
  const g = cmd.optsWithGlobals() as Global;
  return findPinDir({ pinDir: g.pinDir, iface: g.iface });
}

function open(cmd: Command): ServiceTable {
  return ServiceTable.openPinned(pinDir(cmd));
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

/** Services as list shows them: backends with weights and shares of the Maglev table. */
const listed = (t: ServiceTable): ServiceEntry[] => t.list();

const percent = (x: number) => `${(x * 100).toFixed(1)}%`;

program.command('list').description('list services, their backends (weight, share of new flows) and hits')
  .option('--json', 'one JSON object', false)
  .action((o: { json: boolean }, cmd: Command) => withTable(cmd, (t) => {
    const all = listed(t);
    if (o.json) {
      print(JSON.stringify({
        pinDir: t.pinDir,
        services: all.map((e) => ({
          service: formatServiceAddr(e), backends: e.backends.map((b) => ({ backend: `${b.ip}:${b.port}`, weight: b.weight, share: b.share })), packets: e.packets, bytes: e.bytes,
        })),
      }));
      return;
    }
    if (all.length === 0) print('no services');
    for (const e of all) {
      print(`${formatServiceAddr(e).padEnd(24)} ${String(e.packets).padStart(10)} packets ${String(e.bytes).padStart(12)} bytes`);
      if (e.backends.length === 0) print('  (no backends: takes no new flows)');
      for (const b of e.backends) print(`  → ${`${b.ip}:${b.port}`.padEnd(21)} weight ${String(b.weight).padStart(5)}  share ${percent(b.share).padStart(6)}`);
    }
  }));

/** Parses every spec first: one bad spec is one line and nothing is written. */
const parseAll = (specs: string[]) => specs.map((spec) => parseService(spec));

program.command('add').description('add services (each must be new)')
  .argument('<spec...>', 'VIP:PORT/PROTO=IP:PORT[*WEIGHT],...')
  .action((specs: string[], _o: unknown, cmd: Command) => {
    const svcs = parseAll(specs);
    withTable(cmd, (t) => {
      t.write(svcs, 'add');
      for (const s of svcs) print(`added ${describeService(s)}`);
    });
  });

program.command('change').description("change services' backends (each must exist)")
  .argument('<spec...>', 'VIP:PORT/PROTO=IP:PORT[*WEIGHT],...')
  .action((specs: string[], _o: unknown, cmd: Command) => {
    const svcs = parseAll(specs);
    withTable(cmd, (t) => {
      t.write(svcs, 'change');
      for (const s of svcs) print(`changed ${describeService(s)}`);
    });
  });

program.command('set').description('add or change services')
  .argument('<spec...>', 'VIP:PORT/PROTO=IP:PORT[*WEIGHT],...')
  .action((specs: string[], _o: unknown, cmd: Command) => {
    const svcs = parseAll(specs);
    withTable(cmd, (t) => {
      t.write(svcs, 'set');
      for (const s of svcs) print(`set ${describeService(s)}`);
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
  .action((o: { json: boolean }, cmd: Command) => {
    const dir = pinDir(cmd);
    const stats = openPinnedStats(dir);
    let cache: ReturnType<typeof openPinnedFlowCache>;
    try {
      // The flow cache's pending hits are forwarded packets too (redirect): exact once traffic stops.
      cache = openPinnedFlowCache(dir);
      const s = readDnatStats(stats, cache);
      if (o.json) {
        print(JSON.stringify({ pinDir: dir, stats: s }));
        return;
      }
      for (const r of DNAT_REASONS) print(`${r.padEnd(18)} ${s[r]}`);
    } finally {
      cache?.close();
      stats.close();
    }
  });

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
