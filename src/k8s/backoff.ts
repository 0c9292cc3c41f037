/**
 * Retry delays for talking to the API: doubling from `initialMs` up to
 * `maxMs`, with up to `jitter` (a fraction) added so that many nodes do not
 * retry in step; reset() after a success.
 */
export class Backoff {
  private attempt = 0;

  /** Throws a RangeError for a delay below 1 ms, max below initial, or jitter outside 0-1. */
  constructor(readonly initialMs = 200, readonly maxMs = 10_000, readonly jitter = 0.2, private readonly random: () => number = Math.random) {
    if (!(initialMs >= 1) || !(maxMs >= initialMs)) throw new RangeError(`backoff: delays ${initialMs}-${maxMs} ms are not 1 <= initial <= max`);
    if (!(jitter >= 0 && jitter <= 1)) throw new RangeError(`backoff: jitter ${jitter} is not within 0-1`);
  }

  /** Failures since the last reset(). */
  get failures(): number {
    return this.attempt;
  }

  /** The delay before the next retry (ms), and counts a failure. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.min(this.maxMs, Math.round(base * (1 + this.jitter * this.random())));
  }

  /** After a success: the next delay is initialMs again. */
  reset(): void {
    this.attempt = 0;
  }
}

/** The name of a network error ("ECONNREFUSED"), an HTTP status ("HTTP 403"), or the message's first line. */
export function errorCause(e: unknown): string {
  const seen = new Set<unknown>();
  let cur: unknown = e;
  while (cur && typeof cur === 'object' && !seen.has(cur)) {
    seen.add(cur);
    const o = cur as { code?: unknown; errno?: unknown; statusCode?: unknown; cause?: unknown };
    if (typeof o.code === 'string' && /^E[A-Z0-9_]+$/.test(o.code)) return o.code;
    if (typeof o.errno === 'string' && /^E[A-Z0-9_]+$/.test(o.errno)) return o.errno;
    if (typeof o.statusCode === 'number') return `HTTP ${o.statusCode}`;
    if (typeof o.code === 'number' && o.code >= 100 && o.code < 600) return `HTTP ${o.code}`;
    cur = o.cause;
  }
  const m = e instanceof Error ? e.message : String(e);
  const code = /\b(E[A-Z]{3,})\b/.exec(m);
  return code ? code[1] : m.split('\n')[0].slice(0, 200);
}
