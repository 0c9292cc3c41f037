/**
 * Buffered stdout for loaders: lines are batched into few writes so output
 * never holds a reader back, and a closed pipe (`| head`) stops the loader
 * cleanly instead of crashing it.
 */
export class Output {
  #chunks: string[] = [];
  #size = 0;
  #closed = false;
  #scheduled = false;
  #pending = 0;
  #drainWaiters: Array<() => void> = [];

  /** `onClosed` runs once when stdout's reader goes away (EPIPE). */
  constructor(private readonly onClosed: () => void, private readonly stream: NodeJS.WriteStream = process.stdout) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') this.#close();
      else throw e;
    });
  }

  /** True once the reader of stdout has gone. */
  get closed(): boolean {
    return this.#closed;
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chunks = [];
    for (const w of this.#drainWaiters.splice(0)) w();
    this.onClosed();
  }

  /** Queues one line (a newline is added). Flushed at the end of this tick or past 64 KiB. */
  line(s: string): void {
    if (this.#closed) return;
    this.#chunks.push(s, '\n');
    this.#size += s.length + 1;
    if (this.#size >= 65536) this.#write();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => { this.#scheduled = false; this.#write(); });
    }
  }

  #write(): void {
    if (this.#closed || this.#chunks.length === 0) return;
    const data = this.#chunks.join('');
    this.#chunks = [];
    this.#size = 0;
    this.#pending++;
    this.stream.write(data, () => {
      this.#pending--;
      if (this.#pending === 0) for (const w of this.#drainWaiters.splice(0)) w();
    });
  }

  /** Writes out what is queued and waits until it has been handed to the OS. */
  async flush(): Promise<void> {
    this.#write();
    if (this.#closed || this.#pending === 0) return;
    await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
  }
}

/** Per-second rate from two counts `seconds` apart (0 when no time passed or the counter went back). */
export function rate(prev: number, cur: number, seconds: number): number {
  return seconds > 0 && cur >= prev ? (cur - prev) / seconds : 0;
}

/** Formats a rate: one decimal below 1000, then k/M/G with three significant digits. */
export function formatRate(n: number): string {
  if (n < 1000) return n.toFixed(1);
  const units = ['k', 'M', 'G', 'T'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toPrecision(3)}${units[i]}`;
}
