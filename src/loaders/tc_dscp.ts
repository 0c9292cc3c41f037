/**
 * tc_dscp: attach a TC classifier that marks VoIP (IPv4 UDP to the SIP port
 * and the RTP range) with DSCP EF, keeping the ECN bits and fixing the IP
 * checksum, and print how many packets it marked every interval. Attaches
 * TC only (a TCX link where the kernel has them, else a clsact filter); no
 * XDP.
 *
 *   sudo npx tsx src/loaders/tc_dscp.ts eth0
 *   sudo npx tsx src/loaders/tc_dscp.ts eth0 --direction ingress --port 5060 --range 10000-20000 --dscp ef --interval 1 --json
 */
import { Option } from 'commander';
import { parseSeconds, pollEvery, runLesson } from '../cli/lesson.js';
import {
  DSCP_TC_SLOT, DscpMonitor, PROGRAM, applyRule, countersMap, countsJson, describeRule, parseDscpOption, parsePortOption,
  parseRangeOption, readCounters, renderCounts, ruleFromOptions,
} from '../lessons/tc_dscp.js';
import { TC_MODES, type TcDirection, type TcMode } from '../tc.js';

interface Opts {
  direction: TcDirection;
  port?: number | 'none';
  range?: readonly [number, number] | 'none';
  dscp?: number;
  interval: number;
  tc: TcMode;
}

await runLesson<Opts>({
  lesson: 'tc_dscp',
  description: 'mark VoIP (UDP to the SIP port and the RTP range) with DSCP EF at TC, keeping ECN and fixing the IP checksum',
  json: true,
  options: (cmd) => cmd
    .addOption(new Option('--direction <dir>', 'mark packets leaving (egress) or arriving (ingress)').choices(['ingress', 'egress']).default('egress'))
    .option('--port <port>', "mark UDP to this destination port ('none': no single port) (default: 5060)", parsePortOption)
    .option('--range <lo-hi>', "and to this destination port range ('none': no range) (default: 10000-20000)", parseRangeOption)
    .option('--dscp <dscp>', 'the DSCP to set: 0-63 or a name (ef, af41, cs5...) (default: ef, 46)', parseDscpOption)
    .option('--interval <seconds>', 'seconds between counter lines', parseSeconds, 2)
    .addOption(new Option('--tc <mode>', 'how to attach: a TCX link, a clsact filter, or auto (TCX where the kernel has it)').choices(TC_MODES as string[]).default('auto')),
  // Checked before anything is loaded: --port none --range none marks nothing.
  configure: (_obj, opts) => { ruleFromOptions(opts); },
  async attach(ctx) {
    const { obj, iface, opts, log } = ctx;
    const rule = ruleFromOptions(opts);
    // The config first: the program marks nothing until it is there.
    applyRule(obj, rule);
    const tc = ctx.own(obj.program(PROGRAM).attachTc(iface.index, opts.direction, { mode: opts.tc, slot: DSCP_TC_SLOT }));
    log(`attached ${tc.description}`);
    log(tc.description.includes('(tcx link')
      ? '  (a TCX link: bpftool link show lists it; tc filter show and Debian 12\'s bpftool net show do not)'
      : `  (a clsact filter: tc filter show dev ${iface.name} ${opts.direction})`);
    log(`marking ${describeRule(rule)}, ECN bits kept; Ctrl-C to stop`);
  },
  async run(ctx) {
    const monitor = new DscpMonitor(countersMap(ctx.obj));
    await pollEvery(ctx, ctx.opts.interval, () => {
      const s = monitor.snapshot();
      ctx.out.line(ctx.opts.json ? countsJson(s) : renderCounts(s));
    });
  },
  summary(ctx) {
    const c = readCounters(countersMap(ctx.obj));
    ctx.log(`marked ${c.marked}, already marked ${c.already}, unmatched ${c.unmatched}, skipped ${c.skipped}`);
  },
});
