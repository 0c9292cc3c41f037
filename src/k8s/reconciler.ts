/**
 * The reconciler: turns "something changed" into one write of the whole
 * desired state. Every event marks the state dirty; a debounce (20 ms by
 * default) lets a burst of events gather, then one run computes
 * desiredState(services, slices) (src/k8s/translate.ts) and hands it to
 * ServiceTable.apply(), which diffs it against the maps and writes only the
 * difference (unchanged services are not rewritten).
 *
 * Skipped objects are logged once each: when first seen, and again only if
 * they stopped being skipped and came back (or their reason changed). A
 * failed apply (the maps full, a conflict) writes nothing, is logged once
 * per distinct message, and the next event retries.
 */
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { ApplyResult } from '../lb/table.js';
import type { Service } from '../lb/model.js';
import { describeSkipped, desiredState, type DesiredState } from './translate.js';

/** What the reconciler writes to (ServiceTable). */
export interface ApplyTarget {
  apply(desired: readonly Service[]): ApplyResult;
}

/** What it reads (the informers' caches). */
export interface ReconcileInputs {
  services(): Iterable<V1Service>;
  slices(): Iterable<V1EndpointSlice>;
}

/** One reconcile that reached the maps. */
export interface Reconciled {
  /** 1 for the first apply, then +1 each. */
  generation: number;
  desired: DesiredState;
  result: ApplyResult;
  /** Backends over all services. */
  backends: number;
  /** Wall time of translate + apply (ms). */
  ms: number;
  /** When the run started (performance.now()). */
  startedAt: number;
}

/** Options of Reconciler. */
export interface ReconcilerOptions {
  /** Milliseconds a change waits for more (a burst costs one apply). Default 20. */
  debounceMs?: number;
  log(msg: string): void;
  /** After every successful apply. */
  onApplied?(r: Reconciled): void;
  /** After a failed one (nothing written). */
  onFailed?(e: Error): void;
}

/** The default debounce (ms). */
export const DEFAULT_DEBOUNCE_MS = 20;

/**
 * Debounced full-state reconciles from `inputs` into `target` (see the
 * file's header). Throws nothing: failures go to the log and onFailed.
 */
export class Reconciler {
  private timer?: NodeJS.Timeout;
  private gen = 0;
  private logged = new Set<string>();
  private lastError?: string;
  private ok = true;
  private closed = false;
  private readonly debounceMs: number;

  constructor(private readonly inputs: ReconcileInputs, private readonly target: ApplyTarget, private readonly opts: ReconcilerOptions) {
    this.debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    if (!(this.debounceMs >= 0)) throw new RangeError(`reconciler: debounce ${this.debounceMs} ms is negative`);
  }

  /** Successful applies so far. */
  get generation(): number {
    return this.gen;
  }

  /** False after a failed apply, until one succeeds. */
  get healthy(): boolean {
    return this.ok;
  }

  /** Something changed: reconcile after the debounce (one run for all the changes until then). */
  dirty(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.run();
    }, this.debounceMs);
  }

  /** Reconciles now (a pending debounced run is folded in). Returns what was applied, or undefined on failure. */
  run(): Reconciled | undefined {
    if (this.closed) return undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    const startedAt = performance.now();
    let desired: DesiredState;
    let result: ApplyResult;
    try {
      desired = desiredState(this.inputs.services(), this.inputs.slices());
      this.logSkipped(desired);
      result = this.target.apply(desired.services);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.ok = false;
      if (err.message !== this.lastError) this.opts.log(`kubernetes: reconcile failed, the maps keep their previous state: ${err.message}`);
      this.lastError = err.message;
      this.opts.onFailed?.(err);
      return undefined;
    }
    if (!this.ok) this.opts.log('kubernetes: reconcile succeeded again');
    this.ok = true;
    this.lastError = undefined;
    let backends = 0;
    for (const s of desired.services) backends += s.backends.length;
    const r: Reconciled = { generation: ++this.gen, desired, result, backends, ms: performance.now() - startedAt, startedAt };
    this.opts.onApplied?.(r);
    return r;
  }

  private logSkipped(d: DesiredState): void {
    const now = new Set<string>();
    for (const s of d.skipped) {
      const line = describeSkipped(s);
      if (!this.logged.has(line) && !now.has(line)) this.opts.log(`kubernetes: ${line}`);
      now.add(line);
    }
    this.logged = now;
  }

  /** Cancels a pending run; later calls do nothing. Safe twice. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
