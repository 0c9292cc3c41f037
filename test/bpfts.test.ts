/**
 * `bpfts prog|link|net` against programs this test loads and attaches: the
 * xdp_dnat object on the host end of a lab veth (XDP link, a TCX link on
 * ingress, a clsact filter on egress), hello on the peer end inside the
 * lab's namespace, a program and a link pinned in a bpffs folder of the
 * test's own. Output checked field by field against the library's and
 * bpftool's view; bad input gives one line, the documented exit status,
 * and changes nothing.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, ensureBpffs, type Attachment, type Link } from '../src/index.js';
import { ensureObject, REPO_ROOT } from '../src/cli/build.js';
import { pairLab, type PairLab } from '../src/lab/index.js';
import { inNetns } from '../src/inspect/index.js';
import { kernelTests } from './helpers/kernel.js';
import { AS_NOBODY } from './helpers/loader.js';
import { descriptionOf } from '../src/cli/bpfts/run.js';

const BIN = join(REPO_ROOT, 'bin', 'bpfts.js');

interface Run { code: number | null; stdout: string; stderr: string }

/** Runs `bpfts args...` (through its launcher, as `npx bpfts` does) and collects its output. */
function bpfts(args: string[], prefix: string[] = []): Promise<Run> {
  return new Promise((resolve) => {
    const cmd = [...prefix, process.execPath, BIN, ...args];
    const child = spawn(cmd[0], cmd.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += String(d); });
    child.stderr.on('data', (d) => { stderr += String(d); });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function json<T>(args: string[]): Promise<T> {
  const r = await bpfts([...args, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
}

function bpftool<T>(args: string[]): T {
  return JSON.parse(spawnSync('bpftool', ['-j', ...args], { encoding: 'utf8' }).stdout) as T;
}

interface ProgJson { id: number; type: string; name: string; tag: string; loadedAt: string; uid: number; mapIds: number[]; attached: Array<{ type: string; target: string; linkId?: number; ifname?: string; ifindex?: number; mode?: string; hook?: string }> }
interface LinkJson { id: number; type: string; progId: number; progName: string; ifindex?: number; ifname?: string; attachType?: string; target: string }
interface NetJson { netns: string | null; interfaces: Array<{ ifindex: number; ifname: string; xdp: Array<{ mode: string; id: number; name: string; linkId?: number }>; tc: Array<{ hook: string; kind: string; id: number; name: string; linkId?: number; handle?: number; priority?: number; directAction?: boolean }> }> }

describe.skipIf(!kernelTests())('bpfts prog, link, net', () => {
  let lab: PairLab;
  let obj: BpfObject;
  let peerObj: BpfObject;
  let pinDir: string;
  const attachments: Attachment[] = [];
  let xdpLink: Link;
  let tcxLink: Link;
  let xdpId: number;
  let tcId: number;
  let helloId: number;
  const started = Date.now();

  beforeAll(async () => {
    ensureBpffs();
    pinDir = mkdtempSync('/sys/fs/bpf/bpfts-test-');
    lab = await pairLab('bft');
    obj = BpfObject.load(ensureObject('xdp_dnat'));
    xdpLink = obj.program('xdp_dnat').attachXdp(lab.hostIf) as Link;
    attachments.push(xdpLink);
    tcxLink = obj.program('tc_dnat_reply').attachTc(lab.hostIf, 'ingress', { mode: 'tcx' }) as Link;
    attachments.push(tcxLink);
    attachments.push(obj.program('tc_dnat_reply').attachTc(lab.hostIf, 'egress', { mode: 'clsact' }));
    obj.program('xdp_dnat').pin(join(pinDir, 'prog'));
    xdpLink.pin(join(pinDir, 'link'));
    peerObj = BpfObject.load(ensureObject('hello'));
    attachments.push(inNetns(lab.ns, () => peerObj.program('hello').attachXdp(lab.peerIf)));
    xdpId = xdpLink.info().progId;
    tcId = tcxLink.info().progId;
    helloId = bpftool<{ prog_id: number }[]>(['link', 'show']).find((l) => l.prog_id !== xdpId && l.prog_id !== tcId && (bpftool<{ name: string }>(['prog', 'show', 'id', String(l.prog_id)]).name === 'hello'))!.prog_id;
  });
  afterAll(async () => {
    for (const a of attachments.reverse()) a.detach();
    obj?.program('xdp_dnat').unpin();
    obj?.close();
    peerObj?.close();
    if (pinDir) rmSync(pinDir, { recursive: true, force: true });
    await lab?.down();
  });

  it('prog list --json: id, type, name, tag, load time, maps and attachments, as the kernel has them', async () => {
    const progs = await json<ProgJson[]>(['prog', 'list']);
    const p = progs.find((x) => x.id === xdpId)!;
    const tool = bpftool<{ id: number; type: string; name: string; tag: string; map_ids: number[]; loaded_at: number; uid: number }>(['prog', 'show', 'id', String(xdpId)]);
    expect(p).toMatchObject({ id: xdpId, type: 'xdp', name: 'xdp_dnat', tag: tool.tag, uid: 0 });
    expect(p.mapIds).toEqual(tool.map_ids);
    // bpftool gives the load time in whole seconds since the epoch
    expect(Math.abs(Date.parse(p.loadedAt) / 1000 - tool.loaded_at)).toBeLessThan(2);
    expect(Date.parse(p.loadedAt)).toBeGreaterThan(started - 2000);
    expect(Date.parse(p.loadedAt)).toBeLessThanOrEqual(Date.now());
    expect(p.attached).toEqual([{ type: 'xdp', target: `${lab.hostIf} (ifindex ${lab.hostIfindex}) skb mode`, linkId: xdpLink.info().id, ifindex: lab.hostIfindex, ifname: lab.hostIf, mode: 'skb' }]);
    const tc = progs.find((x) => x.id === tcId)!;
    expect(tc.type).toBe('sched_cls');
    expect(tc.attached).toEqual(expect.arrayContaining([
      expect.objectContaining({ type: 'tcx', linkId: tcxLink.info().id, hook: 'ingress', ifname: lab.hostIf }),
      expect.objectContaining({ type: 'tc', hook: 'egress', ifname: lab.hostIf, target: expect.stringMatching(/egress clsact handle \d+ priority \d+$/) }),
    ]));
    expect(tc.attached).toHaveLength(2);
    // hello sits in the lab's namespace: the link says so (its ifindex is not this namespace's)
    expect(progs.find((x) => x.id === helloId)!.attached).toEqual([expect.objectContaining({ type: 'xdp' })]);
  });

  it('prog list: one header line per program and its details, indented', async () => {
    const r = await bpfts(['prog', 'list']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    const i = lines.findIndex((l) => l.startsWith(`${xdpId}: `));
    expect(lines[i]).toMatch(new RegExp(`^${xdpId}: xdp  name xdp_dnat  tag [0-9a-f]{16}$`));
    expect(lines[i + 1]).toMatch(/^\tloaded_at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  uid 0  xlated \d+B  jited \d+B/);
    expect(lines[i + 2]).toMatch(/^\tmap_ids \d+(,\d+)*$/);
    expect(lines[i + 3]).toBe(`\tattached xdp ${lab.hostIf} (ifindex ${lab.hostIfindex}) skb mode (link ${xdpLink.info().id})`);
  });

  it('prog show by id, id:N, name and pinned path finds the same program', async () => {
    for (const spec of [String(xdpId), `id:${xdpId}`, join(pinDir, 'prog')]) {
      const p = await json<ProgJson>(['prog', 'show', spec]);
      expect(p.id).toBe(xdpId);
      expect(p.name).toBe('xdp_dnat');
    }
    const byName = await json<ProgJson[]>(['prog', 'show', 'xdp_dnat']); // an array: names are not unique
    expect(byName.map((p) => p.id)).toContain(xdpId);
    expect(byName.every((p) => p.name === 'xdp_dnat')).toBe(true);
    const r = await bpfts(['prog', 'show', String(xdpId)]);
    expect(r.stdout.split('\n')[0]).toMatch(new RegExp(`^${xdpId}: xdp  name xdp_dnat  tag `));
  });

  it('link list and link show: type, program, interface, attach type', async () => {
    const links = await json<LinkJson[]>(['link', 'list']);
    const x = links.find((l) => l.id === xdpLink.info().id)!;
    expect(x).toMatchObject({ type: 'xdp', progId: xdpId, progName: 'xdp_dnat', ifindex: lab.hostIfindex, ifname: lab.hostIf, target: `${lab.hostIf} (ifindex ${lab.hostIfindex})` });
    const t = links.find((l) => l.id === tcxLink.info().id)!;
    expect(t).toMatchObject({ type: 'tcx', progId: tcId, ifindex: lab.hostIfindex, attachType: 'tcx_ingress' });
    // bpftool 7.1 names the link types it knows (and gives the number of newer ones, tcx)
    const tool = bpftool<Array<{ id: number; type: string | number; prog_id: number }>>(['link', 'show']);
    for (const l of tool.filter((t) => [xdpId, tcId, helloId].includes(t.prog_id))) expect(links.find((m) => m.id === l.id)).toMatchObject({ progId: l.prog_id, ...(typeof l.type === 'string' ? { type: l.type } : {}) });
    const text = (await bpfts(['link', 'list'])).stdout.split('\n');
    expect(text).toContain(`${tcxLink.info().id}: tcx  prog ${tcId} tc_dnat_reply  ${lab.hostIf} (ifindex ${lab.hostIfindex}) tcx_ingress`);
    expect((await json<LinkJson>(['link', 'show', join(pinDir, 'link')])).id).toBe(xdpLink.info().id);
  });

  it('link list: tracepoint and raw tracepoint links name their tracepoint', async () => {
    const tr = BpfObject.load(ensureObject('testdata', 'tracing'));
    try {
      const tp = tr.program('auto_getppid').attach();
      const raw = tr.program('on_sys_enter').attachRawTracepoint('sys_enter');
      const links = await json<LinkJson[]>(['link', 'list']);
      expect(links.find((l) => l.id === tp.info().id)).toMatchObject({ type: 'perf_event', perfEvent: 'tracepoint', tracepoint: 'sys_enter_getppid', target: 'tracepoint sys_enter_getppid', progName: 'auto_getppid' });
      expect(links.find((l) => l.id === raw.info().id)).toMatchObject({ type: 'raw_tracepoint', tracepoint: 'sys_enter', target: 'raw_tracepoint sys_enter', progName: 'on_sys_enter' });
      const p = await json<ProgJson>(['prog', 'show', String(tp.info().progId)]);
      expect(p).toMatchObject({ type: 'tracepoint', name: 'auto_getppid', attached: [{ type: 'perf_event', target: 'tracepoint sys_enter_getppid', linkId: tp.info().id }] });
      tp.detach();
      raw.detach();
    } finally {
      tr.close();
    }
  });

  it('net list: XDP, TCX and clsact programs of this namespace; --netns another one', async () => {
    const net = await json<NetJson>(['net', 'list']);
    expect(net.netns).toBeNull();
    const host = net.interfaces.find((i) => i.ifname === lab.hostIf)!;
    expect(host.ifindex).toBe(lab.hostIfindex);
    expect(host.xdp).toEqual([{ mode: 'skb', id: xdpId, name: 'xdp_dnat', linkId: xdpLink.info().id }]);
    expect(host.tc).toEqual([
      { hook: 'ingress', kind: 'tcx', id: tcId, name: 'tc_dnat_reply', linkId: tcxLink.info().id },
      expect.objectContaining({ hook: 'egress', kind: 'clsact', id: tcId, name: 'tc_dnat_reply', directAction: true }),
    ]);
    expect(net.interfaces.find((i) => i.ifname === lab.peerIf)).toBeUndefined();
    const text = (await bpfts(['net', 'list'])).stdout.split('\n');
    expect(text).toContain(`${lab.hostIf}(${lab.hostIfindex}) skb id ${xdpId} name xdp_dnat link ${xdpLink.info().id}`);
    expect(text).toContain(`${lab.hostIf}(${lab.hostIfindex}) ingress tcx link ${tcxLink.info().id} id ${tcId} name tc_dnat_reply`);
    const other = await json<NetJson>(['net', 'list', '--netns', lab.ns]);
    expect(other.netns).toBe(lab.ns);
    expect(other.interfaces).toHaveLength(1);
    expect(other.interfaces[0]).toMatchObject({ ifname: lab.peerIf, xdp: [{ mode: 'skb', id: helloId, name: 'hello' }], tc: [] });
  });

  it('bad input: one line on stderr, the documented status, nothing changed', async () => {
    // other processes on the machine make and drop links meanwhile: compare ours
    const ours = async () => (await json<LinkJson[]>(['link', 'list'])).filter((l) => [xdpId, tcId, helloId].includes(l.progId));
    const before = await ours();
    expect(before).toHaveLength(3);
    const cases: Array<[string[], number, RegExp]> = [
      [['prog', 'show', '4000000000'], 1, /^bpfts: show prog id 4000000000: no program with id 4000000000 \(ENOENT\)$/],
      [['prog', 'show', 'no_such_prog'], 1, /^bpfts: show prog no_such_prog: no program of that name is loaded \(ENOENT\)$/],
      [['prog', 'show', join(pinDir, 'nothing')], 1, /^bpfts: show prog .*nothing: nothing pinned there \(ENOENT\)$/],
      [['prog', 'show', join(pinDir, 'link')], 1, /^bpfts: show prog .*link: what is pinned there is not a program \(EINVAL\)$/],
      [['prog', 'show', 'id:x1'], 2, /^bpfts: 'id:x1' is not a program id$/],
      [['link', 'show', '4000000000'], 1, /^bpfts: show link id 4000000000: no link with id 4000000000 \(ENOENT\)$/],
      [['net', 'list', '--netns', 'bft-no-such-ns'], 1, /^bpfts: enter netns bft-no-such-ns: no network namespace bft-no-such-ns .* \(ENOENT\)$/],
      [['prog', 'frobnicate'], 2, /^error: unknown command 'frobnicate'$/],
      [['prog', 'list', '--bogus'], 2, /^error: unknown option '--bogus'$/],
    ];
    for (const [args, code, line] of cases) {
      const r = await bpfts(args);
      expect({ args, code: r.code, out: r.stdout }).toEqual({ args, code, out: '' });
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr.trimEnd()).toMatch(line);
    }
    expect(await ours()).toEqual(before);
  });

  it('not root: one line, exit 1', async () => {
    for (const args of [['prog', 'list'], ['link', 'list'], ['net', 'list']]) {
      const r = await bpfts(args, AS_NOBODY);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^bpfts: list (progs|links|net): needs root: run it with sudo \(EPERM\)\n$/);
    }
  });

  it('run --help lists every lesson loader with its description; run <lesson> runs it and leaves nothing attached', async () => {
    const help = await bpfts(['run', '--help']);
    expect(help.code).toBe(0);
    const loaders = readdirSync(join(REPO_ROOT, 'src', 'loaders')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3));
    expect(loaders.length).toBeGreaterThan(10);
    for (const l of loaders) {
      const d = descriptionOf(readFileSync(join(REPO_ROOT, 'src', 'loaders', `${l}.ts`), 'utf8'));
      expect(d.length).toBeGreaterThan(10);
      expect(help.stdout).toMatch(new RegExp(`\\n  ${l} +${d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n`));
    }
    const unknown = await bpfts(['run', 'no_such_lesson', lab.hostIf]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^bpfts: run: unknown lesson 'no_such_lesson' \(have: .*connection_tracker, .*xdp_firewall.*\)\n$/);
    const other = await pairLab('bfr');
    try {
      const r = await bpfts(['run', 'packet_counter', other.hostIf, '--duration', '1.5', '--interval', '1']);
      expect(r.stderr).toContain(`attached xdp packet_counter on ${other.hostIf} (skb mode)`);
      expect(r.stderr).toContain('detached');
      expect(r.code).toBe(0);
      const net = await json<NetJson>(['net', 'list']);
      expect(net.interfaces.find((i) => i.ifname === other.hostIf)).toBeUndefined();
    } finally {
      await other.down();
    }
  });

  it('lab up, list, down', async () => {
    try {
      const up = await bpfts(['lab', 'up', 'pair', 'bfl']);
      expect(up.code).toBe(0);
      expect(up.stdout).toMatch(/^pair lab 'bfl' is up:\n  host  bflh  /);
      expect(up.stdout).toContain('  down: sudo npx bpfts lab down bfl\n');
      const labs = await json<Array<{ tag: string; kind: string; namespaces: string[] }>>(['lab', 'list']);
      expect(labs).toContainEqual(expect.objectContaining({ tag: 'bfl', kind: 'pair', namespaces: ['lbts-bfl'] }));
      const down = await bpfts(['lab', 'down', 'bfl']);
      expect(down).toMatchObject({ code: 0, stderr: '' });
      expect(down.stdout).toMatch(/^removed .*lbts-bfl/);
      expect((await json<Array<{ tag: string }>>(['lab', 'list'])).map((l) => l.tag)).not.toContain('bfl');
    } finally {
      await bpfts(['lab', 'down', 'bfl']);
    }
  });

  it('ends cleanly when its reader goes away (| head -1)', () => {
    const r = spawnSync('bash', ['-c', `set -o pipefail; ${process.execPath} ${BIN} prog list | head -1`], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')).toHaveLength(2);
  });
});
