/**
 * DesiredCache (src/k8s/desired.ts): the desired state kept per Service
 * must always equal translate.ts's desiredState() over the same objects,
 * whatever the order of events, including the rules between Services (a
 * VIP:port claimed twice, a backend that is a VIP) where it falls back to
 * the whole computation.
 */
import { describe, expect, it } from 'vitest';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { DesiredCache } from '../../src/k8s/desired.js';
import { desiredState } from '../../src/k8s/translate.js';
import { endpointSlice, service } from '../helpers/kube_api.js';

/** A deterministic pseudo-random sequence (so a failure can be replayed). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('DesiredCache', () => {
  it('equals desiredState() after every one of 600 random events', () => {
    const rand = rng(14);
    const pick = (n: number) => Math.floor(rand() * n);
    const cache = new DesiredCache();
    const svcs = new Map<string, V1Service>();
    const slices = new Map<string, V1EndpointSlice>();
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    const namespaces = ['default', 'prod', 'prod-x'];
    for (let step = 0; step < 600; step++) {
      const ns = namespaces[pick(3)];
      const name = names[pick(names.length)];
      const r = rand();
      if (r < 0.3) {
        // VIPs from a small pool so that two Services sometimes collide; sometimes a backend's address.
        const vip = rand() < 0.1 ? '10.244.0.3' : `10.96.0.${1 + pick(8)}`;
        const ports = [{ name: 'http', port: 80 }, ...(rand() < 0.5 ? [{ name: 'dns', port: 53, protocol: rand() < 0.2 ? 'SCTP' : 'UDP' }] : [])];
        const s = service(ns, name, vip, ports);
        svcs.set(`${ns}/${name}`, s);
        cache.putService(s);
      } else if (r < 0.4) {
        const s = svcs.get(`${ns}/${name}`);
        if (s) { svcs.delete(`${ns}/${name}`); cache.removeService(s); }
      } else if (r < 0.85) {
        const suffix = rand() < 0.7 ? 'x1' : 'x2';
        const eps = Array.from({ length: pick(4) }, () => (rand() < 0.05 ? '10.244.0.999' : `10.244.0.${1 + pick(6)}`))
          .map((ip) => ({ ip, ready: rand() < 0.8, serving: true, terminating: rand() < 0.5 }));
        // Sometimes a slice moves to another Service (its label changes).
        const owner = rand() < 0.1 ? names[pick(names.length)] : name;
        const sl = endpointSlice(ns, owner, eps, [{ name: 'http', port: 8080 }, { name: 'dns', port: 5353, protocol: 'UDP' }], suffix);
        sl.metadata!.name = `${name}-${suffix}`;
        slices.set(`${ns}/${name}-${suffix}`, sl);
        cache.putSlice(sl);
      } else {
        const key = [...slices.keys()][pick(Math.max(1, slices.size))];
        const sl = key ? slices.get(key) : undefined;
        if (sl) { slices.delete(key); cache.removeSlice(sl); }
      }
      if (rand() < 0.5 || step === 599) {
        const want = desiredState(svcs.values(), slices.values());
        const got = cache.compute();
        expect(got.services, `step ${step}`).toEqual(want.services);
        expect(new Set(got.skipped.map((s) => JSON.stringify(s))), `step ${step}`).toEqual(new Set(want.skipped.map((s) => JSON.stringify(s))));
      }
    }
    expect(cache.fullRuns).toBeGreaterThan(0); // the collisions happened
  });

  it('recomputes only the Service an event touched', () => {
    const cache = new DesiredCache();
    for (let i = 0; i < 50; i++) {
      cache.putService(service('ns', `s${i}`, `10.96.1.${i + 1}`, [{ port: 80 }]));
      cache.putSlice(endpointSlice('ns', `s${i}`, [`10.244.1.${i + 1}`], [{ port: 8080 }]));
    }
    const first = cache.compute();
    expect(first.services).toHaveLength(50);
    cache.putSlice(endpointSlice('ns', 's7', ['10.244.2.1', '10.244.2.2'], [{ port: 8080 }]));
    const second = cache.compute();
    const at = second.services.findIndex((s) => s.vip === '10.96.1.8');
    expect(second.services[at].backends.map((b) => b.ip)).toEqual(['10.244.2.1', '10.244.2.2']);
    // Every other Service is the same object as before: nothing else was translated.
    for (let i = 0; i < 50; i++) if (i !== at) expect(second.services[i]).toBe(first.services[i]);
    expect(cache.fullRuns).toBe(0);
  });

  it('many Services at once: one whole-state call, the parts filled in the background, then one change translates one Service', async () => {
    const cache = new DesiredCache();
    const svcs = Array.from({ length: 1500 }, (_, i) => service('ns', `s${i}`, `10.96.${i >> 8}.${i & 255}`, [{ port: 80 }]));
    const slices = svcs.map((_, i) => endpointSlice('ns', `s${i}`, [`10.244.${i >> 8}.${i & 255}`], [{ port: 8080 }]));
    for (const s of svcs) cache.putService(s);
    for (const s of slices) cache.putSlice(s);
    expect(cache.compute()).toEqual(desiredState(svcs, slices));
    expect(cache.fullRuns).toBe(1);
    while (cache.pending > 0) await new Promise((r) => setImmediate(r));
    slices[42] = endpointSlice('ns', 's42', ['10.244.9.9'], [{ port: 8080 }]);
    cache.putSlice(slices[42]);
    expect(cache.compute()).toEqual(desiredState(svcs, slices));
    expect(cache.fullRuns).toBe(1);
  });
});
