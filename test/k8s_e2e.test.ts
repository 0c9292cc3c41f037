/**
 * The control plane end to end: the xdp_dnat loader as a real process in
 * --kubernetes mode (in the lab's load balancer namespace, entered with
 * nsenter --net), the real client (@kubernetes/client-node) talking to the
 * API stand-in (test/helpers/kube_api.ts: no Kubernetes API server can run
 * here) through a kubeconfig, three pod namespaces with echo servers, real
 * connections from the client namespace to the ClusterIPs:
 * - a Service and its EndpointSlice created: the maps hold it within a
 *   second, and a TCP connection through the ClusterIP reaches the pod;
 * - endpoints scaled up and down: new connections spread to the new pods,
 *   a removed pod gets no new flows, a terminating one is drained;
 * - bad objects (a port out of range, an unknown protocol, a malformed
 *   address) are skipped with one log line each and the rest work;
 * - the stand-in killed: nothing flushed (new connections still work), the
 *   outage said once; a change made during it is applied when it returns;
 * - a 410 Gone: the loader relists and sees a change no event carried;
 * - a restart with --pin-dir: the new loader adopts the maps, resyncs from a
 *   fresh list, and an established connection of an unchanged service
 *   keeps exchanging data throughout; a service changed meanwhile is updated;
 * - /metrics and /healthz answer with the figures;
 * - the service deleted: the VIP stops answering.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDataPlaneMaps, openPinnedDataPlane, type DataPlaneMaps } from '../src/lb/dataplane.js';
import { ServiceTable } from '../src/lb/table.js';
import { dnatLab, holdTcpConnections, runNs, startBackendServers, tcpExchange, type BackendServers, type DnatLab } from '../src/lab/index.js';
import { delNs } from '../src/lab/netns.js';
import { addBackendNs } from './helpers/lb.js';
import { kernelTests, removePins } from './helpers/kernel.js';
import { eventually, runLoader, startLoader, stopAllLoaders, type LoaderProcess } from './helpers/loader.js';
import { KubeApi, endpointSlice, service, type EndpointSpec } from './helpers/kube_api.js';

const TAG = 'k8s';
const VIP = '10.96.0.10';
const PODS = ['10.244.1.5', '10.244.2.5', '10.244.3.5'];
const METRICS = '127.0.0.1:19966';
const HTTP = [{ name: 'http', port: 8080 }];

describe.skipIf(!kernelTests())('xdp_dnat --kubernetes against the API stand-in: client -- load balancer -- three pods', () => {
  let lab: DnatLab;
  const extra: string[] = [];
  const servers: BackendServers[] = [];
  const dir = `/sys/fs/bpf/libbpf-ts/xdp_dnat/test-${TAG}`;
  let api: KubeApi;
  let kubeconfig: string;
  let loader: LoaderProcess;
  let maps: DataPlaneMaps | undefined;

  const startLb = async () => {
    const l = startLoader('xdp_dnat', [lab.lbClientIf, '--kubernetes', '--kubeconfig', kubeconfig, '--metrics-addr', METRICS, '--pin-dir', dir],
      { prefix: ['nsenter', `--net=/run/netns/${lab.lb}`] });
    await l.waitFor('Ctrl-C to stop', 60_000);
    await l.waitFor('kubernetes: initial sync applied', 30_000);
    return l;
  };
  /** The services as the pinned maps hold them: "vip:port/proto" → "ip:port*weight" sorted. */
  const inMaps = (): Map<string, string[]> => {
    const t = new ServiceTable(maps!);
    return new Map(t.services().map((s) => [`${s.vip}:${s.port}/${s.proto}`, s.backends.map((b) => `${b.ip}:${b.port}*${b.weight}`).sort()]));
  };
  const backendsOf = (svc = `${VIP}:80/tcp`) => inMaps().get(svc);
  /** Which pod (index) saw the client's `local` address:port. */
  const podOf = (local: string, port = 8080) => {
    const re = new RegExp(`tcp ${port} ${local.replace(/\./g, '\\.')}(?!\\d)`);
    return servers.findIndex((s) => re.test(s.seen().join('\n')));
  };
  const slice = (eps: Array<string | EndpointSpec>) => endpointSlice('default', 'web', eps, HTTP);
  const curl = async (path: string) => {
    const r = await runNs(lab.lb, ['curl', '-s', '-o', '-', '-w', '\n%{http_code}', `http://${METRICS}${path}`]);
    const i = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
  };
  /** New connections to the VIP: the pods they reached. */
  const spread = async (n: number): Promise<number[]> => {
    const on: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = await tcpExchange(lab.client, VIP, 80, 200, 2);
      expect(t).toMatchObject({ connected: true, peer: `${VIP}:80`, same: true });
      expect(await eventually(() => podOf(t.local!) >= 0, 5000)).toBe(true);
      on.push(podOf(t.local!));
    }
    return on;
  };

  beforeAll(async () => {
    removePins(dir);
    lab = await dnatLab(TAG);
    for (const i of [2, 3]) extra.push(await addBackendNs(lab, i));
    const nss = [lab.backend, ...extra];
    for (let i = 0; i < 3; i++) servers.push(await startBackendServers(nss[i], PODS[i], [8080], [5353]));
    api = await KubeApi.start({ netns: lab.lb });
    kubeconfig = api.writeKubeconfig();
    loader = await startLb();
    maps = openPinnedDataPlane(dir);
  });
  afterAll(async () => {
    if (maps) closeDataPlaneMaps(maps);
    await stopAllLoaders();
    await api?.close();
    for (const s of servers) await s.stop();
    for (const ns of extra) await delNs(ns);
    await lab?.down();
    removePins(dir);
  });

  it('refuses bad flags in one line before loading anything', async () => {
    const prefix = ['nsenter', `--net=/run/netns/${lab.lb}`];
    // Commander's own checks exit 2, the loader's 1; none loads or attaches anything.
    const cases: Array<[string[], number, RegExp]> = [
      [['--kubernetes', '--service', '10.96.0.10:80/tcp=10.244.1.5:8080'], 2, /^error: option '--kubernetes' cannot be used with option '--service [^\n]*\n$/],
      [['--kubernetes', '--kubeconfig', kubeconfig, '--metrics-addr', '9966'], 2, /^error: option '--metrics-addr <host:port>' argument '9966' is invalid\. bad listen address '9966': expected HOST:PORT[^\n]*\n$/],
      [['--kubeconfig', kubeconfig], 1, /^error: --kubeconfig and --metrics-addr go with --kubernetes\n$/],
      [['--kubernetes', '--kubeconfig', '/nonexistent/kubeconfig'], 1, /^error: load kubeconfig \/nonexistent\/kubeconfig: no such file \(ENOENT\)\n$/],
    ];
    for (const [args, code, want] of cases) {
      const r = await runLoader('xdp_dnat', [lab.lbClientIf, ...args, '--duration', '1'], { prefix });
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stderr, args.join(' ')).toMatch(want);
    }
  });

  it('starts with an empty cluster: nothing applied, healthy once synced', async () => {
    expect(loader.stderr()).toContain('kubernetes: initial sync applied: 0 services, 0 backends');
    expect(inMaps().size).toBe(0);
    const h = await curl('/healthz');
    expect(h).toEqual({ status: 200, body: 'ok\n' });
  });

  it('a Service and its EndpointSlice created: in the maps within a second, and a connection through the ClusterIP reaches the pod', async () => {
    const t0 = performance.now();
    api.put(service('default', 'web', VIP, [{ name: 'http', port: 80, targetPort: 'http' }]));
    api.put(slice([PODS[0]]));
    expect(await eventually(() => backendsOf()?.join() === `${PODS[0]}:8080*1`, 1000)).toBe(true);
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(1000);
    const t = await tcpExchange(lab.client, VIP, 80, 50_000);
    expect(t).toMatchObject({ connected: true, peer: `${VIP}:80`, received: 50_000, same: true });
    expect(await eventually(() => podOf(t.local!) === 0, 5000)).toBe(true);
  });

  it('endpoints scaled up and down: new connections spread to the new pods; a removed pod and a terminating one get no new flows', async () => {
    api.put(slice(PODS));
    expect(await eventually(() => backendsOf()?.length === 3, 2000)).toBe(true);
    const on = await spread(24);
    for (const p of [0, 1, 2]) expect(on.filter((x) => x === p).length, `connections to pod ${p}`).toBeGreaterThan(0);
    // Pod 2 removed, pod 1 terminating (serving): drained, weight 0.
    api.put(slice([PODS[0], { ip: PODS[1], ready: false, serving: true, terminating: true }]));
    expect(await eventually(() => backendsOf()?.join() === `${PODS[0]}:8080*1,${PODS[1]}:8080*0`, 2000)).toBe(true);
    expect(new Set(await spread(8))).toEqual(new Set([0]));
    api.put(slice([PODS[0], PODS[1]]));
    expect(await eventually(() => backendsOf()?.join() === `${PODS[0]}:8080*1,${PODS[1]}:8080*1`, 2000)).toBe(true);
  });

  it('bad objects are skipped with one log line each, and never stop the rest', async () => {
    api.put(service('default', 'badport', '10.96.0.21', [{ port: 70000 }]));
    api.put(service('default', 'sctp', '10.96.0.22', [{ port: 80, protocol: 'SCTP' }]));
    api.put(service('default', 'badaddr', '10.96.0.23', [{ port: 80 }]));
    api.put(endpointSlice('default', 'badaddr', ['10.244.1.999', PODS[2]], [{ port: 8080 }]));
    expect(await eventually(() => backendsOf('10.96.0.23:80/tcp')?.join() === `${PODS[2]}:8080*1`, 2000)).toBe(true);
    // More reconciles: the lines are not repeated.
    api.put(slice([PODS[0], PODS[1]]));
    api.put(service('default', 'other', '10.96.0.24', [{ port: 80 }]));
    expect(await eventually(() => backendsOf('10.96.0.24:80/tcp') !== undefined, 2000)).toBe(true);
    const skips = loader.stderr().split('\n').filter((l) => l.startsWith('kubernetes: skip '));
    for (const name of ['badport', 'sctp', 'badaddr']) expect(skips.filter((l) => l.includes(`default/${name}`)), name).toHaveLength(1);
    expect(skips.find((l) => l.includes('default/sctp'))).toMatch(/SCTP/);
    expect(skips.find((l) => l.includes('default/badaddr'))).toMatch(/10\.244\.1\.999/);
    expect(inMaps().has('10.96.0.21:70000/tcp')).toBe(false);
    expect([...inMaps().keys()].some((k) => k.startsWith('10.96.0.22:'))).toBe(false);
    const t = await tcpExchange(lab.client, '10.96.0.23', 80, 1000);
    expect(t).toMatchObject({ connected: true, same: true });
    expect((await tcpExchange(lab.client, VIP, 80, 1000)).connected).toBe(true);
    for (const n of ['badport', 'sctp', 'badaddr', 'other']) api.remove('services', 'default', n);
    api.remove('endpointslices', 'default', 'badaddr-abcde');
    expect(await eventually(() => inMaps().size === 1, 2000)).toBe(true);
  });

  it('the stand-in killed: nothing flushed, said once; a change made during the outage is applied when it returns', async () => {
    const held = await holdTcpConnections(lab.client, VIP, 80, 4);
    try {
      await api.stop();
      // Refused, or reset when a retry races the forwarder's exit.
      await loader.waitFor(/kubernetes: API unreachable \((ECONNREFUSED|ECONNRESET)\), keeping the last state; retrying/, 10_000);
      await new Promise((r) => setTimeout(r, 1500)); // a few retries
      expect(backendsOf()?.join()).toBe(`${PODS[0]}:8080*1,${PODS[1]}:8080*1`);
      expect(await held.exchange(2, 1000, 0.05)).toEqual([true, true, true, true]);
      expect(new Set(await spread(4)).size).toBeGreaterThan(0);
      expect(loader.stderr().split('kubernetes: API unreachable').length - 1).toBe(1);
      const h = await curl('/metrics');
      expect(h.body).toContain('xdp_dnat_api_reachable 0\n');
      api.put(slice(PODS));
      await api.start();
      expect(await eventually(() => backendsOf()?.length === 3, 15_000)).toBe(true);
      await loader.waitFor(/kubernetes: API reachable again after [\d.]+s/, 15_000);
      expect(await held.exchange(2, 1000, 0.05)).toEqual([true, true, true, true]);
    } finally {
      await held.close();
    }
  });

  it('a 410 Gone: relists, and sees a change no watch event carried', async () => {
    api.put(slice([PODS[2]]), { quiet: true });
    api.expireHistory();
    await loader.waitFor('resourceVersion too old (410 Gone); relisting', 10_000);
    expect(await eventually(() => backendsOf()?.join() === `${PODS[2]}:8080*1`, 5000)).toBe(true);
    expect(new Set(await spread(3))).toEqual(new Set([2]));
  });

  it('serves /metrics and /healthz with the figures', async () => {
    await spread(2);
    const m = await curl('/metrics');
    expect(m.status).toBe(200);
    expect(m.body).toContain('xdp_dnat_services 1\n');
    expect(m.body).toContain('xdp_dnat_backends 1\n');
    expect(m.body).toMatch(/xdp_dnat_service_packets_total\{service="10\.96\.0\.10:80\/tcp",namespace="default",name="web",port="http"\} [1-9]\d*\n/);
    expect(m.body).toMatch(/xdp_dnat_service_bytes_total\{service="10\.96\.0\.10:80\/tcp",namespace="default",name="web",port="http"\} [1-9]\d*\n/);
    expect(m.body).toMatch(/xdp_dnat_reconciles_total\{result="ok"\} [1-9]\d*\n/);
    expect(m.body).toMatch(/xdp_dnat_reconcile_duration_seconds_count [1-9]\d*\n/);
    expect(m.body).toMatch(/xdp_dnat_watch_restarts_total\{resource="endpointslices",kind="relist"\} [1-9]/);
    expect(m.body).toMatch(/xdp_dnat_api_errors_total\{resource="services"\} [1-9]/);
    expect(m.body).toContain('xdp_dnat_api_reachable 1\n');
    expect(m.body).toContain('process_cpu_seconds_total');
    expect(await curl('/healthz')).toEqual({ status: 200, body: 'ok\n' });
  });

  it('a restart with --pin-dir: adopts the maps, resyncs, an established connection of an unchanged service keeps working; a change made meanwhile is applied', async () => {
    api.put(service('default', 'dns', '10.96.0.30', [{ name: 'tcp', port: 80 }]));
    api.put(endpointSlice('default', 'dns', [PODS[0]], [{ name: 'tcp', port: 8080 }]));
    expect(await eventually(() => backendsOf('10.96.0.30:80/tcp') !== undefined, 2000)).toBe(true);
    const ids = new ServiceTable(maps!).list().map((s) => [`${s.vip}:${s.port}`, s.id, s.backends.map((b) => b.id).join()]);
    const held = await holdTcpConnections(lab.client, VIP, 80, 4);
    try {
      const exchange = held.exchange(30, 1000, 0.2);
      await new Promise((r) => setTimeout(r, 300));
      expect((await loader.stop('SIGINT')).code).toBe(0);
      api.put(endpointSlice('default', 'dns', [PODS[1]], [{ name: 'tcp', port: 8080 }]));
      loader = await startLb();
      const err = loader.stderr();
      expect(err).toMatch(/adopted \d+ pinned maps/);
      expect(err).toMatch(/service 10\.96\.0\.10:80\/tcp → 10\.244\.3\.5:8080 \(adopted\)/);
      expect(err).toMatch(/initial sync applied: 2 services, 2 backends \(0 added, 1 changed, 0 removed, 1 unchanged\)/);
      expect(backendsOf('10.96.0.30:80/tcp')?.join()).toBe(`${PODS[1]}:8080*1`);
      expect(await exchange).toEqual([true, true, true, true]);
      const after = new ServiceTable(maps!).list().map((s) => [`${s.vip}:${s.port}`, s.id, s.backends.map((b) => b.id).join()]);
      expect(after.find((x) => x[0] === `${VIP}:80`)).toEqual(ids.find((x) => x[0] === `${VIP}:80`));
    } finally {
      await held.close();
    }
    api.remove('services', 'default', 'dns');
    api.remove('endpointslices', 'default', 'dns-abcde');
  });

  it('the service deleted: the VIP stops answering; the loader stops cleanly', async () => {
    expect((await tcpExchange(lab.client, VIP, 80, 100)).connected).toBe(true);
    api.remove('services', 'default', 'web');
    expect(await eventually(() => backendsOf() === undefined, 2000)).toBe(true);
    expect((await tcpExchange(lab.client, VIP, 80, 10, 1)).connected).toBe(false);
    const r = await loader.stop('SIGINT');
    expect(r.code).toBe(0);
  });
});
