/**
 * xdp_dnat's flow cache, through BPF_PROG_TEST_RUN on the real program with
 * a forwarding path (the only one that fills the cache): a worker
 * (test/helpers/dnat-cache-worker.ts) runs in the load balancer namespace of
 * a dnat lab, where bpf_fib_lookup finds routes and neighbours, and reports
 * what each packet did. Checked: an established flow's packets are served
 * from its slot; a backend change through ServiceTable, a connection entry
 * deleted through forgetConnections, a neighbour change through
 * bumpFibGeneration are seen by the flow's next packet; FIN takes the flow
 * out of the cache; packets over the MTU or with TTL 1 take the full path;
 * checksums of cached hits equal a full recomputation; counters are exact
 * with hits served from the cache (pending in the slot until the full path
 * refills it: after N packets, after the slot is taken by another flow,
 * after the grain expires). The worker runs pinned to one CPU (taskset), so
 * a flow's packets share a slot.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XdpAction } from '../src/index.js';
import { REPO_ROOT } from '../src/cli/build.js';
import { dnatLab, type DnatLab } from '../src/lab/index.js';
import { kernelTests, runJsonWorkerInNetns } from './helpers/kernel.js';
import type { CacheObservations } from './helpers/dnat-cache-worker.js';

const TAG = 'xdncach';

function runWorker(lab: DnatLab): Promise<CacheObservations> {
  return runJsonWorkerInNetns<CacheObservations>(lab.lb, join(REPO_ROOT, 'test', 'helpers', 'dnat-cache-worker.ts'), [lab.lbClientIf, lab.lbBackendIf], 'cache worker', { cpu: 0 });
}

describe.skipIf(!kernelTests())('xdp_dnat flow cache (test runs with a forwarding path, in a lab namespace)', () => {
  let lab: DnatLab | undefined;
  let o: CacheObservations;

  beforeAll(async () => {
    lab = await dnatLab(TAG);
    o = await runWorker(lab);
  }, 120_000);
  afterAll(async () => { await lab?.down(); }, 60_000);

  it('sizes the cache at FLOW_CACHE_SLOTS per possible CPU', () => {
    expect(o.flowCacheEntries).toBe(o.expectedEntries);
  });

  it('a SYN opens the connection through the full path; the next packet is forwarded from the flow\'s slot', () => {
    expect(o.syn).toMatchObject({ verdict: XdpAction.REDIRECT, dst: '10.244.1.5', dport: 8080, counted: { conn_new: 1, fib_refresh: 1, redirect: 1 } });
    expect(o.ack1).toMatchObject({ verdict: XdpAction.REDIRECT, dst: '10.244.1.5', dport: 8080, counted: { redirect: 1 } });
    expect(o.slotAfterAck).not.toBeNull();
    expect(o.slotAfterAck!.backend).toBe('10.244.1.5:8080');
    expect(o.slotAfterAck!.epochMatches).toBe(true);
    expect(o.slotAfterAck!.filled).toBe(true);
  });

  it('a cached flow reads no map a writer changed until the epoch changes; then its next packet sees the change', () => {
    // What makes the epoch necessary: backend_map rewritten alone is not seen...
    expect(o.rawWriteNoBump).toMatchObject({ verdict: XdpAction.REDIRECT, dst: '10.244.1.5', counted: { redirect: 1 } });
    // ...and is once the epoch changed: the entry's backend is no longer in its slot.
    expect(o.rawWriteBumped).toMatchObject({ verdict: XdpAction.REDIRECT, dst: '10.244.1.7', counted: { conn_reselect: 1, conn_new: 1, redirect: 1 } });
  });

  it('a backend replaced through ServiceTable: the cached flow\'s next packet goes to the new one', () => {
    expect(o.tableChange).toMatchObject({ verdict: XdpAction.REDIRECT, dst: '10.244.1.6', dport: 8080, counted: { conn_reselect: 1, conn_new: 1, redirect: 1 } });
    expect(o.tableChangeNext).toMatchObject({ verdict: XdpAction.REDIRECT, dst: '10.244.1.6', counted: { redirect: 1 } });
  });

  it('a connection entry deleted through forgetConnections: the cached flow\'s next packet is a new connection', () => {
    expect(o.forgotten).toBe(1);
    expect(o.afterForget).toMatchObject({ verdict: XdpAction.REDIRECT, dst: '10.244.1.6', counted: { conn_new: 1, fib_refresh: 1, redirect: 1 } });
  });

  it('a cached flow\'s packet over the egress MTU or with TTL 1 goes to the stack', () => {
    expect(o.bigPacket).toMatchObject({ verdict: XdpAction.PASS, counted: { pass_mtu: 1 } });
    expect(o.ttlOne).toMatchObject({ verdict: XdpAction.PASS, counted: { pass_ttl: 1 } });
  });

  it('FIN: the flow leaves the cache, its entry is closing, later packets take the full path, a new SYN re-picks', () => {
    expect(o.fin).toMatchObject({ verdict: XdpAction.REDIRECT, counted: { redirect: 1 } });
    expect(o.slotAfterFin).toBe(false);
    expect(o.closingFlags).toBe(1);
    expect(o.ackAfterFin).toMatchObject({ verdict: XdpAction.REDIRECT, counted: { redirect: 1 } });
    expect(o.slotAfterAckOnClosing).toBe(false);
    expect(o.synAfterFin).toMatchObject({ verdict: XdpAction.REDIRECT, counted: { conn_expired: 1, conn_new: 1, redirect: 1 } });
  });

  it('a neighbour change: bumpFibGeneration makes the cached flow look its route up again and use the new MAC', () => {
    expect(o.beforeNeighChange.dmac).not.toBe(o.newMac);
    expect(o.neighBumped).toMatchObject({ verdict: XdpAction.REDIRECT, dmac: o.newMac, counted: { fib_refresh: 1, redirect: 1 } });
    expect(o.neighNext).toMatchObject({ verdict: XdpAction.REDIRECT, dmac: o.newMac, counted: { redirect: 1 } });
  });

  it('cached hits rewrite exactly as the full path does, checksums equal to a full recomputation, and count per service', () => {
    expect(o.checksumBad).toEqual([]);
    expect(o.cachedDiffersFromFull).toBe(0);
    expect(o.serviceHitsDelta).toBe(o.serviceHitsExpected);
  });

  it('counters are exact with hits served from the cache: N packets give N service hits (pending included) and N redirects', () => {
    const c = o.counts;
    expect(c.afterN.hits.total).toBe(c.sent);
    expect(c.afterN.hits.totalBytes).toBe(c.sentBytes);
    expect(c.afterN.redirect).toBe(c.sent);
    // The cached ones are pending in the slot, not in service_hits yet (the path this checks is taken).
    expect(c.afterN.pendingRedirect).toBeGreaterThan(0);
    expect(c.afterN.hits.raw).toBe(c.sent - c.afterN.pendingRedirect);
  });

  it('a slot taken by another flow: its pending hits move to its own service, nothing lost or counted twice', () => {
    const c = o.counts;
    expect(c.hashMatches).toBe(true);
    expect(c.evicted).toBe(true);
    expect(c.afterEvict.pendingRedirect).toBe(0);
    // F's pending hits are now in service_hits of F's service; the UDP flow counted once in its own.
    expect(c.afterEvict.hits).toEqual({ raw: c.afterN.pendingRedirect, rawBytes: c.afterN.hits.totalBytes - c.afterN.hits.rawBytes, total: 0, totalBytes: 0 });
    expect(c.afterEvict.other.total).toBe(1);
    expect(c.afterEvict.other.raw).toBe(1);
    expect(c.afterEvict.redirect).toBe(1);
  });

  it('a grain expired: the flow\'s next packet takes the full path, which flushes the slot: service_hits alone is exact', () => {
    const c = o.counts;
    expect(c.afterGrain.hits).toEqual({ raw: c.afterGrain.sent, rawBytes: c.afterGrain.sentBytes, total: c.afterGrain.sent, totalBytes: c.afterGrain.sentBytes });
    expect(c.afterGrain.redirect).toBe(c.afterGrain.sent);
    expect(c.afterGrain.pendingRedirect).toBe(0);
  });
});
