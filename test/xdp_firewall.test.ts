/**
 * xdp_firewall on a real kernel, with real packets from the peer namespace
 * of a lab veth pair. The peer gets extra addresses (in 198.18.0.0/15, the
 * benchmarking range), the host a route back to them over the veth, so
 * pings from each source get replies exactly when the firewall lets their
 * requests through.
 *
 * - Exact counters per source: N echo requests of 98 bytes each from five
 *   sources give exactly N packets and 98*N bytes per source, summed over
 *   CPUs (the kernel keeps one value per CPU), and the per-reason counters.
 * - Longest prefix wins: 198.18.0.0/16 blocked, 198.18.1.0/24 allowed
 *   inside it, 198.18.1.66/32 blocked inside that: which pings get replies.
 * - The loader with its pinned maps: scripts/firewall.ts removes the /16
 *   (traffic passes again), blocks it again (drops again), lists the rules.
 * - A loader killed with SIGKILL leaves nothing attached; its pins stay
 *   (no process is left to remove them), and the next loader on the same
 *   interface replaces them and removes them when it stops.
 */
import { spawn } from 'node:child_process';
import { existsSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, mapInfoByFd, possibleCpus, queryXdp, XdpAction } from '../src/index.js';
import { ensureObject, REPO_ROOT } from '../src/cli/build.js';
import { FW_REASONS, FirewallTable, MAPS, PIN_ROOT, PROGRAM, defaultPinDir, matchRule, type FwStats, type Rule } from '../src/lessons/xdp_firewall.js';
import { pairLab, ping, run, runNs, type PairLab } from '../src/lab/index.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, startLoader, stopAllLoaders } from './helpers/loader.js';
import { buildFrame } from './helpers/packets.js';

const SOURCES = ['198.18.0.1', '198.18.1.1', '198.18.1.66', '198.19.0.1'];
const RULES: Rule[] = [
  { prefix: '198.18.0.0/16', action: 'drop' },
  { prefix: '198.18.1.0/24', action: 'allow' },
  { prefix: '198.18.1.66/32', action: 'drop' },
];
/** An echo request from ping: Ethernet 14 + IP 20 + ICMP 8 + 56 bytes of data. */
const PING_BYTES = 98;

/** Pings the host `count` times from `src` (one of the peer's addresses); the number of replies. No -w deadline: with one, ping keeps sending until it has `count` replies. */
async function pingFrom(lab: PairLab, src: string, count: number): Promise<number> {
  try {
    const { stdout } = await runNs(lab.ns, ['ping', '-n', '-q', '-c', String(count), '-i', '0.01', '-W', '1', '-I', src, lab.hostIp], { timeoutMs: 10_000 });
    return Number(/(\d+) received/.exec(stdout)?.[1] ?? -1);
  } catch (e) {
    const out = (e as { stdout?: string }).stdout ?? '';
    const m = /(\d+) received/.exec(out);
    if (m) return Number(m[1]);
    throw e;
  }
}

function runFirewall(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'firewall.ts'), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => { stdout += String(d); });
    c.stderr.on('data', (d) => { stderr += String(d); });
    c.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const zeroStats = (): FwStats => Object.fromEntries(FW_REASONS.map((r) => [r, 0])) as FwStats;

describe('scripts/firewall.ts usage', () => {
  it('--help on stdout exits 0; no command or an unknown one exits 2; a bad prefix is one error line, exit 1', async () => {
    const help = await runFirewall(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: firewall [options] [command]');
    expect((await runFirewall([])).code).toBe(2);
    expect((await runFirewall(['bogus'])).code).toBe(2);
    expect(await runFirewall(['block', '10.0.0.0/33'])).toEqual({ code: 1, stdout: '', stderr: "error: bad IPv4 prefix '10.0.0.0/33': the length 33 is over 32\n" });
  });
});

describe.skipIf(!kernelTests())('xdp_firewall on a real kernel', () => {
  let lab: PairLab;
  beforeAll(async () => {
    lab = await pairLab('fwl');
    for (const a of SOURCES) await run(['ip', '-n', lab.ns, 'addr', 'add', `${a}/32`, 'dev', lab.peerIf]);
    // Replies to the extra sources go back over the veth (the route goes with the interface at teardown).
    await run(['ip', 'route', 'add', '198.18.0.0/15', 'dev', lab.hostIf]);
    // Resolve ARP both ways before any counting.
    expect(await ping(lab.ns, lab.hostIp, 1)).toBe(1);
  });
  afterAll(async () => {
    await stopAllLoaders();
    await lab?.down();
    // The pin root the loaders made, when no other loader uses it (rmdir refuses a non-empty directory).
    for (const d of [PIN_ROOT, dirname(PIN_ROOT)]) { try { rmdirSync(d); } catch { /* in use, or gone */ } }
  });

  it('declares the maps the lesson teaches', () => {
    using obj = BpfObject.load(ensureObject('xdp_firewall'));
    const byName = Object.fromEntries(obj.maps.map((m) => [m.name, [m.typeName, m.keySize, m.valueSize]]));
    expect(byName).toMatchObject({
      [MAPS.hosts]: ['hash', 4, 4], [MAPS.prefixes]: ['lpm_trie', 8, 4], [MAPS.sources]: ['percpu_hash', 4, 32], [MAPS.stats]: ['percpu_array', 4, 8],
    });
    expect(mapInfoByFd(obj.mapFd(MAPS.prefixes)).flags & 1 /* BPF_F_NO_PREALLOC */).toBe(1);
  });

  it('counts every source exactly, summed over CPUs; the longest prefix decides who gets through', async () => {
    using obj = BpfObject.load(ensureObject('xdp_firewall'));
    const table = FirewallTable.fromObject(obj);
    table.setAll(RULES);
    expect(table.rules()).toEqual(RULES);
    const link = obj.program(PROGRAM).attachXdp(lab.hostIf);
    try {
      const N = 7;
      const replies: Record<string, number> = {};
      for (const src of [...SOURCES, lab.peerIp]) replies[src] = await pingFrom(lab, src, N);
      // 198.18.0.1: in the blocked /16 only. 198.18.1.1: in the allowed /24. 198.18.1.66: the blocked /32
      // inside the allowed /24. 198.19.0.1 and the peer's own address: no rule.
      expect(replies).toEqual({ '198.18.0.1': 0, '198.18.1.1': N, '198.18.1.66': 0, '198.19.0.1': N, [lab.peerIp]: N });
      // The kernel's own lookups say the same as the user-space longest-prefix match.
      for (const src of SOURCES) expect(table.verdict(src)).toBe(matchRule(RULES, src)?.action ?? 'none');
      const expected = (dropped: boolean) => ({ packets: N, bytes: N * PING_BYTES, dropped: dropped ? N : 0, droppedBytes: dropped ? N * PING_BYTES : 0 });
      const bySource = () => Object.fromEntries(table.sources().map(({ source, ...c }) => [source, c]));
      const want = {
        '198.18.0.1': expected(true), '198.18.1.1': expected(false), '198.18.1.66': expected(true),
        '198.19.0.1': expected(false), [lab.peerIp]: expected(false),
      };
      await eventually(() => JSON.stringify(bySource()) === JSON.stringify(Object.fromEntries(Object.keys(want).sort().map((k) => [k, want[k]]))), 3000);
      expect(bySource()).toEqual(want);
      // What the kernel keeps: one value per CPU, which add up to the sums.
      const perCpu = table.sourcePerCpu('198.18.1.1')!;
      expect(perCpu).toHaveLength(possibleCpus);
      expect(perCpu.reduce((a, c) => a + c.packets, 0)).toBe(N);
      expect(table.source('198.18.1.1')).toEqual({ source: '198.18.1.1', ...expected(false) });
      const stats = table.stats();
      expect({ ...stats, pass_not_ipv4: 0 }).toEqual({ ...zeroStats(), pass_no_rule: 2 * N, pass_prefix: N, drop_host: N, drop_prefix: N });
    } finally {
      link.detach();
    }
    expect(queryXdp(lab.hostIf)).toEqual([]);
  });

  it('changing a rule takes effect at once: removing the /32 lets that host through, removing the /16 frees the rest', async () => {
    using obj = BpfObject.load(ensureObject('xdp_firewall'));
    const table = FirewallTable.fromObject(obj);
    table.setAll(RULES);
    const link = obj.program(PROGRAM).attachXdp(lab.hostIf);
    try {
      expect(await pingFrom(lab, '198.18.1.66', 3)).toBe(0);
      expect(table.remove('198.18.1.66')).toBe('198.18.1.66/32');
      expect(await pingFrom(lab, '198.18.1.66', 3)).toBe(3);
      expect(await pingFrom(lab, '198.18.0.1', 3)).toBe(0);
      table.remove('198.18.0.0/16');
      expect(await pingFrom(lab, '198.18.0.1', 3)).toBe(3);
      expect(() => table.remove('198.18.0.0/16')).toThrow('remove 198.18.0.0/16: no rule for 198.18.0.0/16 (ENOENT)');
      expect(table.rules()).toEqual([{ prefix: '198.18.1.0/24', action: 'allow' }]);
    } finally {
      link.detach();
    }
  });

  it('test runs: ARP and truncated frames pass uncounted by source', () => {
    using obj = BpfObject.load(ensureObject('xdp_firewall'));
    const table = FirewallTable.fromObject(obj);
    table.set('0.0.0.0/0', 'drop');
    const prog = obj.program(PROGRAM);
    const frame = buildFrame({ src: '203.0.113.9', dst: '203.0.113.1', proto: 17, sport: 1, dport: 2, payload: new Uint8Array(10) });
    expect(prog.testRun({ data: frame, repeat: 5 }).retval).toBe(XdpAction.DROP);
    expect(table.source('203.0.113.9')).toMatchObject({ packets: 5, dropped: 5, bytes: 5 * frame.length });
    const arp = Buffer.from(frame);
    arp.writeUInt16BE(0x0806, 12);
    expect(prog.testRun({ data: arp }).retval).toBe(XdpAction.PASS);
    expect(prog.testRun({ data: frame.subarray(0, 30) }).retval).toBe(XdpAction.PASS);
    expect(table.stats()).toEqual({ ...zeroStats(), drop_prefix: 5, pass_not_ipv4: 1, pass_malformed: 1 });
  });

  it('loader: scripts/firewall.ts edits the rules of the running loader through its pins; SIGINT removes them', async () => {
    const dir = defaultPinDir(lab.hostIf);
    const loader = startLoader('xdp_firewall', [lab.hostIf, '--block', '198.18.0.0/16', '--allow', '198.18.1.0/24', '--json', '--interval', '0.3', '--top', '3']);
    try {
      await loader.waitFor('Ctrl-C to stop', 30_000);
      expect(existsSync(join(dir, MAPS.prefixes))).toBe(true);
      expect(await pingFrom(lab, '198.18.0.1', 4)).toBe(0);
      expect(await pingFrom(lab, '198.18.1.1', 2)).toBe(2);
      let r = await runFirewall(['--iface', lab.hostIf, 'remove', '198.18.0.0/16']);
      expect(r).toEqual({ code: 0, stdout: 'removed 198.18.0.0/16\n', stderr: '' });
      expect(await pingFrom(lab, '198.18.0.1', 3)).toBe(3);
      r = await runFirewall(['--iface', lab.hostIf, 'block', '198.18.7.7/16']);
      expect(r.stdout).toBe('blocked 198.18.0.0/16\n');
      expect(await pingFrom(lab, '198.18.0.1', 2)).toBe(0);
      r = await runFirewall(['--iface', lab.hostIf, 'list', '--json']);
      const listed = JSON.parse(r.stdout) as { pinDir: string; rules: Rule[]; stats: FwStats };
      expect(listed.pinDir).toBe(dir);
      expect(listed.rules).toEqual([{ prefix: '198.18.0.0/16', action: 'drop' }, { prefix: '198.18.1.0/24', action: 'allow' }]);
      expect(listed.stats.drop_prefix).toBe(6);
      r = await runFirewall(['--iface', lab.hostIf, 'remove', '10.0.0.0/8']);
      expect(r).toEqual({ code: 1, stdout: '', stderr: 'error: remove 10.0.0.0/8: no rule for 10.0.0.0/8 (ENOENT)\n' });
      r = await runFirewall(['--iface', lab.hostIf, 'block', '10.0.0.0/40']);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe("error: bad IPv4 prefix '10.0.0.0/40': the length 40 is over 32\n");
      // The loader's table: 198.18.0.1 sent 4 + 3 + 2 = 9 echo requests, 6 of them dropped.
      await eventually(() => loader.stdout().includes('"source":"198.18.0.1","packets":9,'), 3000);
      const last = loader.stdout().trim().split('\n').map((l) => JSON.parse(l) as { top: Array<{ source: string; packets: number; dropped: number; bytes: number }> }).pop()!;
      expect(last.top.find((t) => t.source === '198.18.0.1')).toMatchObject({ packets: 9, dropped: 6, bytes: 9 * PING_BYTES });
      expect(last.top.length).toBeLessThanOrEqual(3);
      expect(await loader.stop('SIGINT')).toEqual({ code: 0, signal: null });
    } finally {
      loader.kill('SIGKILL');
    }
    expect(queryXdp(lab.hostIf)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    const r = await runFirewall(['--iface', lab.hostIf, 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: find xdp_firewall loader: no xdp_firewall loader on fwlh/);
  });

  it('SIGKILL: nothing stays attached; the pins stay, and the next loader replaces and then removes them', async () => {
    const dir = defaultPinDir(lab.hostIf);
    const first = startLoader('xdp_firewall', [lab.hostIf, '--block', '198.18.0.0/16']);
    try {
      await first.waitFor('Ctrl-C to stop', 30_000);
      expect(queryXdp(lab.hostIf)).toHaveLength(1);
      first.kill('SIGKILL');
      expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    } finally {
      first.kill('SIGKILL');
    }
    expect(await eventually(() => queryXdp(lab.hostIf).length === 0, 5000)).toBe(true);
    expect(await pingFrom(lab, '198.18.0.1', 2)).toBe(2);
    // Nobody removed the pins: a dead loader's maps, which the script refuses to edit.
    expect(existsSync(join(dir, MAPS.prefixes))).toBe(true);
    let r = await runFirewall(['--pin-dir', dir, 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('is gone (no program uses its maps); start it again (ESRCH)');
    const second = startLoader('xdp_firewall', [lab.hostIf]);
    try {
      await second.waitFor('Ctrl-C to stop', 30_000);
      expect(second.stderr()).toContain(`replaced the pins a dead loader left at ${dir}`);
      r = await runFirewall(['--iface', lab.hostIf, 'list']);
      expect(r.stdout.split('\n')[0]).toBe('no rules'); // the new loader's maps, not the dead one's
      expect(await second.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    } finally {
      second.kill('SIGKILL');
    }
    expect(existsSync(dir)).toBe(false);
    expect(queryXdp(lab.hostIf)).toEqual([]);
  });
});
