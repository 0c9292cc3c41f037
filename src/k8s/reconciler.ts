/**
 * The reconciler: turns "something changed" into one write of the whole
 * desired state. Every event marks the state dirty; runs are rate-limited
 * to one per window (20 ms by default), like kube-proxy's minSyncPeriod: a
 * change after a quiet spell is applied on the next turn of the event loop
 * (the events of one watch read, however many, gather into that run), and
 * changes within the window after a run wait for its end and go in one run
 * together. So a burst costs one or two applies, and a lone change is not
 * delayed. A run takes the desired state (src/k8s/desired.ts: translate.ts's
 * desiredState, kept per Service) and hands it to ServiceTable.apply(),
 * which diffs it against the maps and writes only the difference
 * (unchanged services are not rewritten).
 *
 * Skipped objects are logged once each: when first seen, and again only if
 * they stopped being skipped and came back (or their reason changed). A
 * failed apply (the maps full, a conflict) writes nothing, is logged once
 * per distinct message, and the next event retries.
 */
import type { ApplyResult } from '../lb/table.js';
import type { Service } from '../lb/model.js';
import { describeSkipped, type DesiredState } from './translate.js';

/** What the reconciler writes to (ServiceTable). */
export interface ApplyTarget {
  apply(desired: readonly Service[]): ApplyResult;
}

/** Where the desired state comes from (a DesiredCache fed by the informers). */
export interface ReconcileInputs {
  desired(): DesiredState;
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
  /** The window (ms): at most one run per window; changes in it wait for its end. Default 20. */
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
  /** When the last run ended (performance.now()). */
  private lastRun = -Infinity;
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

  /** Something changed: reconcile on the next turn, or at the end of the window after the last run (one run for all the changes until then). */
  dirty(): void {
    if (this.closed || this.timer) return;
    const wait = Math.max(0, this.lastRun + this.debounceMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.run();
    }, wait);
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
      desired = this.inputs.desired();
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
    this.lastRun = performance.now();
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
