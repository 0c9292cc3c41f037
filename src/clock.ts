/**
 * Kernel time to wall-clock time. BPF programs stamp events with
 * bpf_ktime_get_ns() (CLOCK_MONOTONIC); user space shows them as local
 * times of day.
 */

/**
 * Turns bpf_ktime_get_ns() values into wall-clock times. The kernel stamps
 * CLOCK_MONOTONIC (time since boot, not counting suspend); Node's
 * process.hrtime reads the same clock (libuv: clock_gettime(CLOCK_MONOTONIC)),
 * so wall = ktime + (Date.now() - hrtime), an offset read when the clock is
 * made and again on refresh() (after an NTP step or a suspend it changes).
 */
export class WallClock {
  #offsetMs = 0;

  /** `nowMs` (ms since the epoch) and `monoNs` (CLOCK_MONOTONIC ns) are for tests; by default the system clocks. */
  constructor(private readonly nowMs: () => number = Date.now, private readonly monoNs: () => bigint = () => process.hrtime.bigint()) {
    this.refresh();
  }

  /** Rereads the offset between the wall clock and CLOCK_MONOTONIC. */
  refresh(): void {
    // Date.now() has millisecond steps: take it between two monotonic readings, against their middle.
    const a = this.monoNs();
    const wall = this.nowMs();
    const b = this.monoNs();
    this.#offsetMs = wall - Number((a + b) / 2n) / 1e6;
  }

  /** Wall-clock milliseconds since the epoch of a CLOCK_MONOTONIC timestamp in ns. */
  toEpochMs(monotonicNs: number): number {
    return monotonicNs / 1e6 + this.#offsetMs;
  }

  /** A Date of a CLOCK_MONOTONIC timestamp in ns. */
  toDate(monotonicNs: number): Date {
    return new Date(this.toEpochMs(monotonicNs));
  }
}

/** "11:40:01.123", local time. */
export function formatClock(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
