/**
 * xdp_firewall: attach an XDP program that counts packets and bytes per
 * IPv4 source (per-CPU hash) and drops sources a blocklist names: single
 * addresses in a hash, CIDR prefixes in an LPM trie where the longest
 * prefix wins. Prints the top talkers every interval; pins the maps so
 * scripts/firewall.ts can block, allow and remove prefixes while it runs.
 *
 *   sudo npx tsx src/loaders/xdp_firewall.ts eth0 --block 192.168.0.0/16 --allow 192.168.1.0/24 --block 192.168.1.66
 *   sudo npx tsx src/loaders/xdp_firewall.ts eth0 --top 5 --interval 1 --json
 *
 * In a network namespace, run it with `nsenter --net=/run/netns/NS`, not
 * `ip netns exec NS` (that gives the process a private bpffs: the pins
 * would be invisible to the firewall script).
 */
import { InvalidArgumentError } from 'commander';
import { parsePositiveInt, parseSeconds, pollEvery, runLesson } from '../cli/lesson.js';
import { FirewallTable, PROGRAM, TalkerMonitor, defaultPinDir, formatRule, renderTalkerTable, talkerJson, type Rule } from '../lessons/xdp_firewall.js';
import { normalizeCidr } from '../codec.js';
import { ensureBpffs } from '../bpffs.js';
import { tsxCommand } from '../cli/hint.js';

interface Opts {
  block?: Rule[];
  allow?: Rule[];
  pinDir?: string;
  interval: number;
  top: number;
}

function collect(action: Rule['action']) {
  return (v: string, prev: Rule[] | undefined): Rule[] => {
    try {
      return [...(prev ?? []), { prefix: normalizeCidr(v), action }];
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };
}

function rulesOf(opts: Opts): Rule[] {
  const rules = [...(opts.block ?? []), ...(opts.allow ?? [])];
  const seen = new Map<string, Rule>();
  for (const r of rules) {
    const other = seen.get(r.prefix);
    if (other && other.action !== r.action) throw new Error(`check rules: ${r.prefix} is both blocked and allowed`);
    seen.set(r.prefix, r);
  }
  return [...seen.values()];
}

await runLesson<Opts>({
  lesson: 'xdp_firewall',
  description: 'count packets per IPv4 source and drop blocked sources and prefixes (hash for addresses, LPM trie for prefixes: the longest prefix wins)',
  json: true,
  options: (cmd) => cmd
    .option('--block <CIDR>', 'drop packets from this prefix or address (repeatable; a bare IP is a /32)', collect('drop'))
    .option('--allow <CIDR>', 'let this prefix or address through even inside a blocked prefix (repeatable)', collect('allow'))
    .option('--top <n>', 'sources per table', parsePositiveInt, 10)
    .option('--interval <seconds>', 'seconds between tables', parseSeconds, 2)
    .option('--pin-dir <dir>', 'pin the maps here (on bpffs) for scripts/firewall.ts (default: /sys/fs/bpf/libbpf-ts/xdp_firewall/<iface>-<netns>)'),
  // Checked before anything is loaded: a prefix both blocked and allowed is a mistake, not a rule.
  configure: (_obj, opts) => { rulesOf(opts); },
  async attach(ctx) {
    const { obj, iface, opts, log } = ctx;
    const rules = rulesOf(opts);
    const table = FirewallTable.fromObject(obj);
    table.setAll(rules);
    for (const r of table.rules()) log(`rule ${formatRule(r)}`);
    if (ensureBpffs()) log('mounted a bpffs at /sys/fs/bpf (this mount namespace had none)');
    const dir = opts.pinDir ?? defaultPinDir(iface.name);
    if (table.pin(dir)) log(`replaced the pins a dead loader left at ${dir}`);
    ctx.defer(() => table.unpin());
    const link = ctx.own(obj.program(PROGRAM).attachXdp(iface.index, { mode: opts.mode, force: opts.force }));
    log(`attached ${link.description}`);
    log(`pinned maps at ${dir} (rules: ${tsxCommand('scripts/firewall.ts', ['--pin-dir', dir, 'list'])})`);
    log('Ctrl-C to stop');
  },
  async run(ctx) {
    const monitor = new TalkerMonitor(FirewallTable.fromObject(ctx.obj), ctx.opts.top);
    await pollEvery(ctx, ctx.opts.interval, () => {
      const s = monitor.snapshot();
      for (const l of ctx.opts.json ? [talkerJson(s)] : renderTalkerTable(s)) ctx.out.line(l);
    });
  },
});
