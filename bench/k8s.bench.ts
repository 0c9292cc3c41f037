/**
 * Control plane figures (src/k8s/): the real client (@kubernetes/client-node
 * informers) against the API stand-in (test/helpers/kube_api.ts, in this
 * process, on 127.0.0.1), the controller writing real kernel maps through a
 * ServiceTable (maps created as the data plane declares them, sized for
 * 10,000 services of 10 backends; no program attached). Timed from the
 * stand-in's side: from the moment the objects are published to the
 * moment the controller has applied them to the maps (its onApplied hook,
 * after ServiceTable.apply returned; checked against the table).
 *
 * - Initial sync: 10,000 Services and 10,000 EndpointSlices of 10
 *   endpoints each in the stand-in; controller started → all applied.
 *   Includes two lists (about 17 MB of JSON), parsing, the informers' caches,
 *   desiredState, and the first apply (10,000 Maglev tables). Goal < 2 s.
 * - One EndpointSlice change (one endpoint's address replaced) published as
 *   a watch event → applied: median over 50 changes. Includes the watch
 *   line's parse, the translation of the one Service it belongs to
 *   (src/k8s/desired.ts), the apply's diff over all 10,000 services and its
 *   writes (one Maglev table rebuilt). Goal < 20 ms.
 */
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { closeLbMaps, createLbMaps } from '../src/lb/layout.js';
import { ServiceTable } from '../src/lb/table.js';
import { KubeController } from '../src/k8s/controller.js';
import { DEFAULT_DEBOUNCE_MS, type Reconciled } from '../src/k8s/reconciler.js';
import { loadKubeConfig } from '../src/k8s/kubeconfig.js';
import { KubeApi, endpointSlice, service } from '../test/helpers/kube_api.js';
import type { BenchModule, BenchRow } from './lib.js';

const SERVICES = 10_000;
const ENDPOINTS = 10;

const vipOf = (i: number) => `10.96.${i >> 8}.${i & 255}`;
const podOf = (i: number, j: number) => `10.${200 + j}.${i >> 8}.${i & 255}`;
const svcOf = (i: number): V1Service => service('bench', `svc-${i}`, vipOf(i), [{ name: 'http', port: 80, targetPort: 'http' }]);
const sliceOf = (i: number, pods: string[]): V1EndpointSlice => endpointSlice('bench', `svc-${i}`, pods, [{ name: 'http', port: 8080 }]);
const podsOf = (i: number) => Array.from({ length: ENDPOINTS }, (_, j) => podOf(i, j));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const bench: BenchModule = {
  name: 'k8s',
  async run({ quick }) {
    const rows: BenchRow[] = [];
    const api = await KubeApi.start();
    const maps = createLbMaps({ maxServices: SERVICES + 16, maxBackends: SERVICES * ENDPOINTS + 64 });
    const logs: string[] = [];
    let controller: KubeController | undefined;
    try {
      for (let i = 0; i < SERVICES; i++) {
        api.put(svcOf(i), { quiet: true });
        api.put(sliceOf(i, podsOf(i)), { quiet: true });
      }
      const kubeconfig = loadKubeConfig(api.writeKubeconfig());
      let listBytes = 0;
      for (const path of ['/api/v1/services', '/apis/discovery.k8s.io/v1/endpointslices']) listBytes += (await (await fetch(`${api.url}${path}`)).arrayBuffer()).byteLength;
      // Initial sync, from empty maps each time.
      const syncs: number[] = [];
      const syncApply: number[] = [];
      const syncRounds = quick ? 1 : 3;
      let table = new ServiceTable(maps);
      for (let r = 0; r < syncRounds; r++) {
        table.apply([]);
        const c = new KubeController({ kubeconfig, table, log: (m) => logs.push(m), processMetrics: false });
        c.onApplied((x) => { if (x.generation === 1) syncApply.push(x.ms); });
        const t0 = performance.now();
        c.start();
        await c.whenSynced();
        syncs.push(performance.now() - t0);

        if (table.size !== SERVICES) throw new Error(`k8s bench: ${table.size} services applied, expected ${SERVICES}`);
        if (r < syncRounds - 1) await c.stop(); else controller = c;
      }
      const c = controller!;
      // One slice change at a time.
      const n = quick ? 10 : 50;
      const changes: number[] = [];
      const applyMs: number[] = [];
      for (let k = 0; k < n; k++) {
        const i = (k * 997) % SERVICES;
        const pods = podsOf(i);
        pods[k % ENDPOINTS] = `10.199.${k >> 8}.${(k & 255) || 1}`;
        const want = pods[k % ENDPOINTS];
        const holds = () => table.get({ vip: vipOf(i), port: 80, proto: 'tcp' })?.backends.some((b) => b.ip === want) === true;
        const applied = new Promise<Reconciled>((resolve) => {
          const off = c.onApplied((x) => { if (holds()) { off(); resolve(x); } });
        });
        await new Promise((r) => setTimeout(r, DEFAULT_DEBOUNCE_MS + 10)); // a lone change, not part of a burst
        const t0 = performance.now();
        api.put(sliceOf(i, pods));
        const x = await applied;
        changes.push(performance.now() - t0);
        applyMs.push(x.ms);
        // Back to the original, untimed.
        const back = new Promise<void>((resolve) => { const off = c.onApplied(() => { if (!holds()) { off(); resolve(); } }); });
        api.put(sliceOf(i, podsOf(i)));
        await back;
      }
      // The maps themselves, read back by a fresh table, hold the state.
      table = new ServiceTable(maps);
      if (table.size !== SERVICES) throw new Error(`k8s bench: the maps hold ${table.size} services`);
      const sync = Math.min(...syncs);
      const one = median(changes);
      rows.push(
        { group: 'k8s', figure: `initial sync: ${SERVICES} Services x ${ENDPOINTS} endpoints, stand-in → applied maps`, unit: 'ms', ts: sync, goal: '< 2000 ms', pass: sync < 2000,
          note: `best of ${syncRounds} (${syncs.map((s) => s.toFixed(0)).join(', ')}); two lists (JSON of ${(listBytes / 1e6).toFixed(1)} MB, parsed as plain JSON: src/k8s/list.ts) and the informers filling their caches, then translate + first apply (${SERVICES} Maglev tables): ${syncApply.map((s) => s.toFixed(0)).join(', ')} ms` },
        { group: 'k8s', figure: 'one EndpointSlice change, watch event → applied maps', unit: 'ms', ts: one, goal: '< 20 ms', pass: one < 20,
          note: `median of ${n} (min ${Math.min(...changes).toFixed(1)}, max ${Math.max(...changes).toFixed(1)}); window ${DEFAULT_DEBOUNCE_MS} ms (a lone change runs at once); translate + apply alone: median ${median(applyMs).toFixed(1)} ms` },
      );
    } finally {
      await controller?.stop();
      await api.close();
      closeLbMaps(maps);
    }
    return rows;
  },
};

export default bench;
