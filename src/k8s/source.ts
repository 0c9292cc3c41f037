/**
 * The Kubernetes side of the control plane: client-node informers (list,
 * then watch from the list's resourceVersion) for v1 Services and
 * discovery.k8s.io/v1 EndpointSlices in every namespace, kept running
 * whatever the API does:
 *
 * - a watch the server closes (or drops) re-watches from the last
 *   resourceVersion seen (the informer does this itself);
 * - a 410 Gone (an ERROR event with a 410 Status, or HTTP 410) makes the
 *   informer relist; its cache is replaced only by a successful list;
 * - any other failure (the API unreachable, a 5xx, a 403) stops the
 *   informer; this module restarts it after a backoff (doubling, capped),
 *   from the last resourceVersion, and logs the outage once and the
 *   recovery once. The caches keep the last state meanwhile.
 *
 * The lists are made by list.ts (plain JSON, not the client's classes).
 * The caches are what the reconciler reads; `changed` is called for every
 * object event, `synced` once, when both resources have been listed.
 */
import { ListWatch, Watch, type KubeConfig, type KubernetesObject, type V1EndpointSlice, type V1Service } from '@kubernetes/client-node';
import { listJson } from './list.js';
import { Backoff, errorCause } from './backoff.js';

/** The resources watched. */
export type ResourceName = 'services' | 'endpointslices';
export const RESOURCE_NAMES: readonly ResourceName[] = ['services', 'endpointslices'];

/** What the source tells its owner. */
export interface SourceHooks {
  /** An object of `resource` was added or changed (`deleted` false), or deleted; also while listing. */
  changed(resource: ResourceName, obj: KubernetesObject, deleted: boolean): void;
  /** Both resources listed for the first time: the caches hold the cluster's state. */
  synced(): void;
  /** A status line. */
  log(msg: string): void;
  /** A request to the API failed (`cause`: "ECONNREFUSED", "HTTP 403", ...). */
  apiError?(resource: ResourceName, cause: string): void;
  /** A watch was started again after its first: re-watched from the last resourceVersion, or relisted (410 Gone). */
  watchRestart?(resource: ResourceName, relist: boolean): void;
}

/** Options of KubeSource. */
export interface SourceOptions {
  /** First retry delay after a failure (ms). Default 200. */
  retryInitialMs?: number;
  /** Longest retry delay (ms). Default 10,000. */
  retryMaxMs?: number;
}

interface Watched {
  name: ResourceName;
  informer: ListWatch<KubernetesObject>;
  backoff: Backoff;
  /** Listed at least once. */
  synced: boolean;
  /** Its watch is running (no failure since the last start). */
  up: boolean;
  /** Failures during the current start(). */
  failed: boolean;
  connects: number;
  retry?: NodeJS.Timeout;
  /** When a dropped watch was last restarted at once (ms). */
  lastDropRetry: number;
}

/** Causes that mean the connection of a running watch broke (the server may well be up). */
const DROPPED = new Set(['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'EPIPE']);

const PATHS: Record<ResourceName, string> = {
  services: '/api/v1/services',
  endpointslices: '/apis/discovery.k8s.io/v1/endpointslices',
};

/**
 * Informers for Services and EndpointSlices with restart on failure (see
 * the file's header). start() returns at once; stop() ends every request
 * and timer (safe twice). Needs no kernel.
 */
export class KubeSource {
  private readonly watched: Record<ResourceName, Watched>;
  private stopped = true;
  private syncedOnce = false;
  private downSince?: number;
  private downRetries = 0;

  constructor(kc: KubeConfig, private readonly hooks: SourceHooks, opts: SourceOptions = {}) {
    const make = (name: ResourceName): Watched => {
      // Lists as plain JSON (list.ts), like the watch events.
      const informer = new ListWatch<KubernetesObject>(PATHS[name], new Watch(kc), () => listJson(kc, PATHS[name]), false);
      const w: Watched = { name, informer, backoff: new Backoff(opts.retryInitialMs ?? 200, opts.retryMaxMs ?? 10_000), synced: false, up: false, failed: false, connects: 0, lastDropRetry: 0 };
      const onChange = (obj: KubernetesObject) => this.hooks.changed(name, obj, false);
      informer.on('add', onChange);
      informer.on('update', onChange);
      informer.on('delete', (obj) => this.hooks.changed(name, obj, true));
      informer.on('error', (err) => this.failed(w, err));
      informer.on('connect', () => this.connected(w));
      return w;
    };
    this.watched = { services: make('services'), endpointslices: make('endpointslices') };
  }

  /** The Services in the cache (the last successful list plus the events since). */
  services(): readonly V1Service[] {
    return this.watched.services.informer.list() as readonly V1Service[];
  }

  /** The EndpointSlices in the cache. */
  slices(): readonly V1EndpointSlice[] {
    return this.watched.endpointslices.informer.list() as readonly V1EndpointSlice[];
  }

  /** Both resources have been listed (the caches hold a real state). */
  get synced(): boolean {
    return this.syncedOnce;
  }

  /** False from the first failure until every watch runs again. */
  get reachable(): boolean {
    return this.downSince === undefined;
  }

  /** Starts listing and watching; returns at once (failures are retried, never thrown). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    for (const name of RESOURCE_NAMES) void this.run(this.watched[name]);
  }

  /** Stops every informer and retry timer. Safe twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const name of RESOURCE_NAMES) {
      const w = this.watched[name];
      clearTimeout(w.retry);
      w.retry = undefined;
      await w.informer.stop();
    }
  }

  private async run(w: Watched): Promise<void> {
    w.retry = undefined;
    if (this.stopped) return;
    w.failed = false;
    try {
      await w.informer.start();
    } catch (e) {
      this.failed(w, e);
      return;
    }
    // The informer reports failures through 'error' before start() resolves.
    if (w.failed || this.stopped) return;
    w.up = true;
    w.backoff.reset();
    if (!w.synced) {
      w.synced = true;
      if (!this.syncedOnce && RESOURCE_NAMES.every((n) => this.watched[n].synced)) {
        this.syncedOnce = true;
        this.hooks.synced();
      }
    }
    if (this.downSince !== undefined && RESOURCE_NAMES.every((n) => this.watched[n].up)) {
      const s = ((Date.now() - this.downSince) / 1000).toFixed(1);
      this.hooks.log(`kubernetes: API reachable again after ${s}s (${this.downRetries} retries); watching from the last state`);
      this.downSince = undefined;
      this.downRetries = 0;
    }
  }

  private connected(w: Watched): void {
    w.connects++;
    if (w.connects === 1 || this.stopped) return;
    const relist = w.synced && w.informer.latestResourceVersion() === '';
    if (relist) this.hooks.log(`kubernetes: ${w.name}: resourceVersion too old (410 Gone); relisting`);
    this.hooks.watchRestart?.(w.name, relist);
  }

  private failed(w: Watched, err: unknown): void {
    if (this.stopped) return;
    const wasUp = w.up;
    w.failed = true;
    w.up = false;
    const cause = errorCause(err);
    // A running watch whose connection broke (reset, closed mid-stream) is a
    // dropped watch, not an outage: watch again at once, as the informer does
    // after a clean close. If that fails too, it is an outage. At most once a
    // second, so a server that keeps resetting gets the backoff.
    if (wasUp && DROPPED.has(cause) && !w.retry && Date.now() - w.lastDropRetry > 1000) {
      w.lastDropRetry = Date.now();
      w.retry = setTimeout(() => void this.run(w), 0);
      return;
    }
    this.hooks.apiError?.(w.name, cause);
    if (this.downSince === undefined) {
      this.downSince = Date.now();
      this.downRetries = 0;
      this.hooks.log(`kubernetes: API unreachable (${cause}), keeping the last state; retrying`);
    }
    if (w.retry) return;
    this.downRetries++;
    w.retry = setTimeout(() => void this.run(w), w.backoff.next());
  }
}
