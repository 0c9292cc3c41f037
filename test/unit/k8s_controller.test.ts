/**
 * The control plane without the kernel: the real client (@kubernetes/
 * client-node informers) against the API stand-in (test/helpers/kube_api.ts),
 * the controller writing to a table that records what it is given (the
 * kernel tests write real maps). Checks the stand-in's protocol (list JSON,
 * watch streams, bookmarks, 410 on an expired list), and the controller's
 * behaviour: initial sync, a burst costs one apply, a dropped watch
 * re-watches from the last resourceVersion, 410 relists, an outage keeps the
 * state and is logged once, metrics and health text.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ApplyResult } from '../../src/lb/table.js';
import type { Service } from '../../src/lb/model.js';
import { KubeController } from '../../src/k8s/controller.js';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.js';
import { Backoff, errorCause } from '../../src/k8s/backoff.js';
import { parseListenAddr, serveMetrics } from '../../src/k8s/metrics.js';
import { KubeApi, endpointSlice, service } from '../helpers/kube_api.js';
import { ApiStatusError, listJson } from '../../src/k8s/list.js';

const NOTHING: ApplyResult = { servicesAdded: 0, servicesChanged: 0, servicesRemoved: 0, servicesUnchanged: 0, backendsAdded: 0, backendsChanged: 0, backendsRemoved: 0, maglevWritten: 0 };

/** Records every apply: the last state given, and how many. */
class RecordingTable {
  state: Service[] = [];
  applies = 0;
  apply(desired: readonly Service[]): ApplyResult {
    this.applies++;
    this.state = desired.map((s) => ({ ...s, backends: s.backends.map((b) => ({ ...b })) }));
    return { ...NOTHING, servicesUnchanged: desired.length };
  }
  list() {
    return this.state.map((s) => ({ vip: s.vip, port: s.port, proto: s.proto, packets: 7, bytes: 700 }));
  }
  backendsOf(vip: string, port = 80): string[] {
    return (this.state.find((s) => s.vip === vip && s.port === port)?.backends ?? []).map((b) => `${b.ip}:${b.port}*${b.weight ?? 1}`);
  }
}

async function until(what: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (what()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return what();
}

describe('the kube API stand-in', () => {
  let api: KubeApi;
  beforeEach(async () => { api = await KubeApi.start(); });
  afterEach(async () => { await api.close(); });

  it('lists as the API does, and 410s a list from an expired resourceVersion', async () => {
    api.put(service('default', 'web', '10.96.0.10', [{ port: 80 }]));
    const r = await fetch(`${api.url}/api/v1/services`);
    const body = await r.json() as { kind: string; apiVersion: string; metadata: { resourceVersion: string }; items: Array<{ kind: string; apiVersion: string; metadata: { resourceVersion: string } }> };
    expect(body).toMatchObject({ kind: 'ServiceList', apiVersion: 'v1', metadata: { resourceVersion: String(api.resourceVersion) } });
    expect(body.items[0]).toMatchObject({ kind: 'Service', apiVersion: 'v1', metadata: { name: 'web', namespace: 'default' } });
    const ns = await (await fetch(`${api.url}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices`)).json() as { kind: string };
    expect(ns.kind).toBe('EndpointSliceList');
    api.expireHistory();
    const gone = await fetch(`${api.url}/api/v1/services?resourceVersion=1`);
    expect(gone.status).toBe(410);
    expect(await gone.json()).toMatchObject({ kind: 'Status', code: 410, reason: 'Expired' });
    expect((await fetch(`${api.url}/api/v1/nodes`)).status).toBe(404);
  });

  it('listJson: the list as plain JSON through the kubeconfig; HTTP errors with their status, a dead server with ECONNREFUSED', async () => {
    api.put(service('default', 'web', '10.96.0.10', [{ port: 80 }]));
    const kc = loadKubeConfig(api.writeKubeconfig());
    const l = await listJson(kc, '/api/v1/services');
    expect(l.items.map((o) => o.metadata?.name)).toEqual(['web']);
    expect(l.metadata?.resourceVersion).toBe(String(api.resourceVersion));
    const e = await listJson(kc, '/api/v1/nodes').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ApiStatusError);
    expect((e as ApiStatusError).statusCode).toBe(404);
    expect((e as Error).message).toMatch(/^list \/api\/v1\/nodes: HTTP 404: the server could not find the requested resource/);
    await api.stop();
    await expect(listJson(kc, '/api/v1/services')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('streams watch events after a resourceVersion, bookmarks, and a 410 ERROR event once expired', async () => {
    const rv = api.put(service('default', 'a', '10.96.0.11', [{ port: 80 }]));
    api.put(service('default', 'b', '10.96.0.12', [{ port: 80 }]));
    const ac = new AbortController();
    const res = await fetch(`${api.url}/api/v1/services?watch=true&resourceVersion=${rv}&allowWatchBookmarks=true`, { signal: ac.signal });
    const reader = res.body!.getReader();
    let text = '';
    const lines = async (n: number) => {
      while (text.split('\n').length - 1 < n) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString();
      }
      return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; object: { kind?: string; code?: number; metadata: { name?: string; resourceVersion?: string } } });
    };
    expect((await lines(1))[0]).toMatchObject({ type: 'ADDED', object: { metadata: { name: 'b' } } });
    api.remove('services', 'default', 'a');
    api.bookmark();
    const l = await lines(3);
    expect(l[1]).toMatchObject({ type: 'DELETED', object: { metadata: { name: 'a' } } });
    expect(l[2]).toMatchObject({ type: 'BOOKMARK', object: { kind: 'Service', metadata: { resourceVersion: String(api.resourceVersion) } } });
    expect(Number(l[1].object.metadata.resourceVersion)).toBeGreaterThan(rv);
    api.expireHistory();
    expect((await lines(4))[3]).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410 } });
    ac.abort();
  });
});

describe('the controller against the stand-in', () => {
  let api: KubeApi;
  let controller: KubeController | undefined;
  let table: RecordingTable;
  let logs: string[];

  beforeEach(async () => {
    api = await KubeApi.start();
    table = new RecordingTable();
    logs = [];
  });
  afterEach(async () => {
    await controller?.stop();
    controller = undefined;
    await api.close();
  });

  const start = (debounceMs = 20) => {
    controller = new KubeController({
      kubeconfig: loadKubeConfig(api.writeKubeconfig()), table, log: (m) => logs.push(m), debounceMs, retryInitialMs: 50, retryMaxMs: 400, processMetrics: false,
    });
    controller.start();
    return controller;
  };

  it('applies the initial state once both are listed, and a burst of events in one apply', async () => {
    api.put(service('default', 'web', '10.96.0.10', [{ name: 'http', port: 80, targetPort: 'http' }]));
    api.put(endpointSlice('default', 'web', ['10.244.1.5', '10.244.2.5'], [{ name: 'http', port: 8080 }]));
    const c = start(50);
    await c.whenSynced();
    expect(table.applies).toBe(1);
    expect(table.backendsOf('10.96.0.10')).toEqual(['10.244.1.5:8080*1', '10.244.2.5:8080*1']);
    expect(c.health()).toEqual({ ok: true });
    for (let i = 0; i < 20; i++) api.put(endpointSlice('default', 'web', ['10.244.1.5', `10.244.3.${i + 1}`], [{ name: 'http', port: 8080 }]));
    expect(await until(() => table.backendsOf('10.96.0.10').includes('10.244.3.20:8080*1'))).toBe(true);
    await new Promise((r) => setTimeout(r, 150));
    expect(table.applies).toBeLessThanOrEqual(3); // 20 events: one or two debounced runs after the first
  });

  it('a dropped watch re-watches from the last resourceVersion; a 410 relists and sees a change no event carried', async () => {
    api.put(service('default', 'web', '10.96.0.10', [{ port: 80 }]));
    api.put(endpointSlice('default', 'web', ['10.244.1.5'], [{ port: 8080 }]));
    const c = start();
    await c.whenSynced();
    const lists = api.stats.lists.services;
    expect(api.dropWatches()).toBe(2);
    expect(await until(() => api.watchCount() === 2)).toBe(true);
    api.put(endpointSlice('default', 'web', ['10.244.1.5', '10.244.1.6'], [{ port: 8080 }]));
    expect(await until(() => table.backendsOf('10.96.0.10').length === 2)).toBe(true);
    expect(api.stats.lists.services).toBe(lists); // no relist for a dropped watch
    // A change whose event was compacted away: only a relist can see it.
    api.put(endpointSlice('default', 'web', ['10.244.1.7'], [{ port: 8080 }]), { quiet: true });
    api.expireHistory();
    expect(await until(() => table.backendsOf('10.96.0.10').join() === '10.244.1.7:8080*1')).toBe(true);
    expect(api.stats.lists.endpointslices).toBeGreaterThan(1);
    expect(logs).toContain('kubernetes: endpointslices: resourceVersion too old (410 Gone); relisting');
    const text = await c.metrics.text();
    expect(text).toMatch(/xdp_dnat_watch_restarts_total\{resource="endpointslices",kind="relist"\} [1-9]/);
    expect(text).toMatch(/xdp_dnat_watch_restarts_total\{resource="services",kind="rewatch"\} [1-9]/);
  });

  it('keeps the last state while the API is down, says so once, and applies a change made during the outage', async () => {
    api.put(service('default', 'web', '10.96.0.10', [{ port: 80 }]));
    api.put(endpointSlice('default', 'web', ['10.244.1.5'], [{ port: 8080 }]));
    const c = start();
    await c.whenSynced();
    const applies = table.applies;
    await api.stop();
    expect(await until(() => logs.some((l) => l.startsWith('kubernetes: API unreachable')), 3000)).toBe(true);
    await new Promise((r) => setTimeout(r, 800)); // several retries
    expect(logs.filter((l) => l.startsWith('kubernetes: API unreachable'))).toEqual(['kubernetes: API unreachable (ECONNREFUSED), keeping the last state; retrying']);
    expect(table.applies).toBe(applies); // nothing written, nothing flushed
    expect(c.source.reachable).toBe(false);
    api.put(endpointSlice('default', 'web', ['10.244.1.5', '10.244.1.9'], [{ port: 8080 }]));
    await api.start();
    expect(await until(() => table.backendsOf('10.96.0.10').length === 2, 5000)).toBe(true);
    expect(await until(() => c.source.reachable)).toBe(true);
    expect(logs.some((l) => /^kubernetes: API reachable again after [\d.]+s \(\d+ retries\)/.test(l))).toBe(true);
    expect(await c.metrics.text()).toMatch(/xdp_dnat_api_errors_total\{resource="services"\} [1-9]/);
  });

  it('does not apply anything before the first successful list', async () => {
    await api.stop();
    const c = start();
    await new Promise((r) => setTimeout(r, 300));
    expect(table.applies).toBe(0);
    expect(c.health()).toEqual({ ok: false, reason: 'initial sync not applied yet' });
    api.put(service('default', 'web', '10.96.0.10', [{ port: 80 }]));
    await api.start();
    await c.whenSynced();
    expect(table.state.map((s) => `${s.vip}:${s.port}`)).toEqual(['10.96.0.10:80']);
  });

  it('serves /metrics and /healthz', async () => {
    api.put(service('prod', 'web', '10.96.0.10', [{ name: 'http', port: 80 }]));
    api.put(endpointSlice('prod', 'web', ['10.244.1.5', '10.244.1.6'], [{ name: 'http', port: 8080 }]));
    const c = start();
    const srv = await serveMetrics('127.0.0.1:0', c.metrics, () => c.health());
    try {
      const before = await fetch(`${srv.url}/healthz`);
      if (c.reconciler.generation === 0) expect([before.status, await before.text()]).toEqual([503, 'initial sync not applied yet\n']);
      await c.whenSynced();
      const h = await fetch(`${srv.url}/healthz`);
      expect([h.status, await h.text()]).toEqual([200, 'ok\n']);
      const m = await fetch(`${srv.url}/metrics`);
      expect(m.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const text = await m.text();
      expect(text).toContain('# TYPE xdp_dnat_services gauge\nxdp_dnat_services 1\n');
      expect(text).toContain('xdp_dnat_backends 2\n');
      expect(text).toContain('xdp_dnat_service_packets_total{service="10.96.0.10:80/tcp",namespace="prod",name="web",port="http"} 7\n');
      expect(text).toContain('xdp_dnat_service_bytes_total{service="10.96.0.10:80/tcp",namespace="prod",name="web",port="http"} 700\n');
      expect(text).toContain('xdp_dnat_reconciles_total{result="ok"} 1\n');
      expect(text).toMatch(/xdp_dnat_reconcile_duration_seconds_count 1\n/);
      expect(text).toContain('xdp_dnat_synced 1\n');
      expect(text).toContain('xdp_dnat_api_reachable 1\n');
      expect((await fetch(`${srv.url}/nope`)).status).toBe(404);
    } finally {
      await srv.close();
      await srv.close();
    }
  });
});

describe('control plane plumbing', () => {
  it('backs off doubling, capped, and resets', () => {
    const b = new Backoff(100, 1000, 0, () => 0.5);
    expect([b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 800, 1000]);
    b.reset();
    expect(b.next()).toBe(100);
    expect(new Backoff(100, 1000, 0.5, () => 1).next()).toBe(150);
    expect(() => new Backoff(0)).toThrow(RangeError);
  });

  it('names the cause of a failure', () => {
    expect(errorCause(Object.assign(new Error('request failed'), { code: 'ECONNREFUSED' }))).toBe('ECONNREFUSED');
    expect(errorCause(Object.assign(new Error('x'), { cause: { code: 'ECONNRESET' } }))).toBe('ECONNRESET');
    expect(errorCause(Object.assign(new Error('Forbidden'), { statusCode: 403 }))).toBe('HTTP 403');
    expect(errorCause(new Error('connect EHOSTUNREACH 10.0.0.1:443'))).toBe('EHOSTUNREACH');
  });

  it('parses listen addresses and refuses bad ones', () => {
    expect(parseListenAddr('0.0.0.0:9966')).toEqual({ host: '0.0.0.0', port: 9966 });
    expect(parseListenAddr('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(() => parseListenAddr('9966')).toThrow(/bad listen address '9966'/);
    expect(() => parseListenAddr('h:70000')).toThrow(RangeError);
  });

  it('refuses a missing kubeconfig and a machine outside a pod', () => {
    expect(() => loadKubeConfig('/nonexistent/kubeconfig')).toThrow('load kubeconfig /nonexistent/kubeconfig: no such file (ENOENT)');
    const host = process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_HOST;
    try {
      expect(() => loadKubeConfig()).toThrow(/^load kubeconfig: not in a pod .*give --kubeconfig PATH \(ENOENT\)$/);
    } finally {
      if (host !== undefined) process.env.KUBERNETES_SERVICE_HOST = host;
    }
  });

  it('says when the metrics address is taken', async () => {
    const a = await serveMetrics('127.0.0.1:0', new (await import('../../src/k8s/metrics.js')).ControlPlaneMetrics({ hits: () => [], origins: () => new Map(), synced: () => false, reachable: () => true }, { processMetrics: false }), () => ({ ok: true }));
    try {
      const port = new URL(a.url).port;
      await expect(serveMetrics(`127.0.0.1:${port}`, new (await import('../../src/k8s/metrics.js')).ControlPlaneMetrics({ hits: () => [], origins: () => new Map(), synced: () => false, reachable: () => true }, { processMetrics: false }), () => ({ ok: true })))
        .rejects.toThrow(`listen metrics on 127.0.0.1:${port}: address already in use (EADDRINUSE)`);
    } finally {
      await a.close();
    }
  });
});
