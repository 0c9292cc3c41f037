/**
 * The control plane, put together: the informers (source.ts) feed the
 * reconciler (reconciler.ts), which writes the load balancer's maps through
 * a ServiceTable; the metrics (metrics.ts) watch both.
 *
 * Nothing is written before both resources have been listed: a table
 * adopted from pinned maps keeps its state until the first real list, and
 * then only what differs is written. After the initial sync the reconcile
 * runs at once; after that, at most once per window (reconciler.ts). While the API is unreachable the
 * caches, and so the maps, keep the last state.
 */
import type { KubeConfig, V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { DesiredCache } from './desired.js';
import { KubeSource, type SourceOptions } from './source.js';
import { Reconciler, type ApplyTarget, type Reconciled } from './reconciler.js';
import { ControlPlaneMetrics, serviceOrigins, type Health, type ServiceHits } from './metrics.js';

/** What the controller writes to and reads hits from (a ServiceTable). */
export interface ControlledTable extends ApplyTarget {
  list(): ServiceHits[];
}

/** Options of KubeController. */
export interface ControllerOptions extends SourceOptions {
  kubeconfig: KubeConfig;
  table: ControlledTable;
  log(msg: string): void;
  /** The reconciler's window (ms): at most one apply per window; default 20. */
  debounceMs?: number;
  /** Collect prom-client's process metrics too (default true). */
  processMetrics?: boolean;
}

/**
 * Keeps `table` in step with the cluster's Services and EndpointSlices.
 * start() returns at once; whenSynced() resolves after the first apply.
 * stop() ends the watches and timers (the maps keep their state). Needs
 * the kernel only through the table it is given.
 */
export class KubeController {
  readonly source: KubeSource;
  readonly reconciler: Reconciler;
  readonly metrics: ControlPlaneMetrics;
  /** The desired state, kept per Service from the informers' events. */
  readonly desired = new DesiredCache();
  private readonly listeners = new Set<(r: Reconciled) => void>();
  private syncedResolve!: () => void;
  private readonly syncedPromise = new Promise<void>((r) => { this.syncedResolve = r; });

  constructor(opts: ControllerOptions) {
    const log = opts.log;
    this.source = new KubeSource(opts.kubeconfig, {
      log,
      changed: (resource, obj, deleted) => {
        if (resource === 'services') {
          if (deleted) this.desired.removeService(obj as V1Service); else this.desired.putService(obj as V1Service);
        } else if (deleted) this.desired.removeSlice(obj as V1EndpointSlice);
        else this.desired.putSlice(obj as V1EndpointSlice);
        if (this.source.synced) this.reconciler.dirty();
      },
      synced: () => {
        const r = this.reconciler.run();
        if (r) log(`kubernetes: initial sync applied: ${r.desired.services.length} services, ${r.backends} backends (${r.result.servicesAdded} added, ${r.result.servicesChanged} changed, ${r.result.servicesRemoved} removed, ${r.result.servicesUnchanged} unchanged) in ${r.ms.toFixed(1)} ms`);
      },
      apiError: (resource) => this.metrics.apiError(resource),
      watchRestart: (resource, relist) => this.metrics.watchRestart(resource, relist),
    }, opts);
    this.reconciler = new Reconciler({ desired: () => this.desired.compute() }, opts.table, {
      debounceMs: opts.debounceMs,
      log,
      onApplied: (r) => {
        this.metrics.reconciled(r);
        if (r.generation === 1) this.syncedResolve();
        for (const l of this.listeners) l(r);
      },
      onFailed: () => this.metrics.reconcileFailed(),
    });
    this.metrics = new ControlPlaneMetrics({
      hits: () => opts.table.list(),
      origins: () => serviceOrigins(this.source.services()),
      synced: () => this.reconciler.generation > 0,
      reachable: () => this.source.reachable,
    }, { processMetrics: opts.processMetrics });
  }

  /** Starts the watches. */
  start(): void {
    this.source.start();
  }

  /** Resolves after the first successful apply of the cluster's state. */
  whenSynced(): Promise<void> {
    return this.syncedPromise;
  }

  /** Calls `fn` after every apply; returns a function that removes it. */
  onApplied(fn: (r: Reconciled) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** /healthz: ok once the initial sync is applied and while applies succeed. */
  health(): Health {
    if (this.reconciler.generation === 0) return { ok: false, reason: this.reconciler.healthy ? 'initial sync not applied yet' : 'initial sync failed to apply' };
    if (!this.reconciler.healthy) return { ok: false, reason: 'the last reconcile failed to apply (see the log)' };
    return { ok: true };
  }

  /** Stops watching and reconciling. Safe twice. */
  async stop(): Promise<void> {
    this.reconciler.close();
    await this.source.stop();
    this.listeners.clear();
  }
}
