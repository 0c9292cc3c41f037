/** tcp_connect's user side without a kernel: probe choice, its one line, byte counters to data bytes, text and JSON. */
import { describe, expect, it } from 'vitest';
import {
  chooseProbe, eventData, formatEvent, HEADER, probeLine, TcpEvent, FLAG_FIN_ACKED, FLAG_FIN_RECEIVED, FLAG_SYN_ACKED,
  EVENT_CLOSE, EVENT_CONNECT, type TcpEventValue,
} from '../../src/lessons/tcp_connect.js';

function ev(over: Partial<TcpEventValue>): TcpEventValue {
  const e = TcpEvent.zero();
  const comm = new Uint8Array(16);
  comm.set(Buffer.from('curl'));
  return { ...e, pid: 42, comm, saddr: '10.0.0.2', sport: 40000, daddr: '10.0.0.1', dport: 80, ...over };
}

describe('tcp_connect probe choice', () => {
  it('auto is the kprobe only where the kernel has kprobes and tcp_connect', () => {
    expect(chooseProbe('auto', { kprobes: true, hasFunction: true })).toBe('kprobe');
    expect(chooseProbe('auto', { kprobes: false, hasFunction: false })).toBe('tracepoint');
    expect(chooseProbe('auto', { kprobes: true, hasFunction: false })).toBe('tracepoint');
    expect(chooseProbe('kprobe', { kprobes: false, hasFunction: false })).toBe('kprobe');
    expect(chooseProbe('tracepoint', { kprobes: true, hasFunction: true })).toBe('tracepoint');
  });
  it('says which in one line, and why the tracepoint', () => {
    expect(probeLine('kprobe', 'auto', { kprobes: true, hasFunction: true }))
      .toBe("connects: kprobe on tcp_connect (the seed's probe); closes: tracepoint sock:inet_sock_set_state");
    expect(probeLine('tracepoint', 'auto', { kprobes: false, hasFunction: false }))
      .toBe('connects and closes: tracepoint sock:inet_sock_set_state (this kernel has no kprobes)');
    expect(probeLine('tracepoint', 'auto', { kprobes: true, hasFunction: false })).toMatch(/no function tcp_connect\)$/);
    expect(probeLine('tracepoint', 'tracepoint', { kprobes: true, hasFunction: true })).toMatch(/--probe tracepoint\)$/);
  });
});

describe('tcp_connect events', () => {
  it('struct tcp_event is 72 bytes', () => { expect(TcpEvent.size).toBe(72); });
  it('a connect: pid, comm, addresses and ports', () => {
    expect(eventData(ev({ kind: EVENT_CONNECT }))).toEqual({ event: 'connect', pid: 42, comm: 'curl', saddr: '10.0.0.2', sport: 40000, daddr: '10.0.0.1', dport: 80 });
  });
  it('a close: data bytes without the SYN and FINs the kernel counters include', () => {
    const d = eventData(ev({ kind: EVENT_CLOSE, oldstate: 5, duration_ns: 1_234_567, bytes_acked: 1002, bytes_received: 501, flags: FLAG_SYN_ACKED | FLAG_FIN_ACKED | FLAG_FIN_RECEIVED }));
    expect(d).toMatchObject({ event: 'close', tx: 1000, rx: 500, bytesAcked: 1002, bytesReceived: 501, durationMs: 1.235 });
    expect(d.failed).toBeUndefined();
    expect(eventData(ev({ kind: EVENT_CLOSE, oldstate: 2 }))).toMatchObject({ tx: 0, rx: 0, failed: true });
  });
  it('text lines line up under the header', () => {
    const c = formatEvent(ev({ kind: EVENT_CONNECT }));
    const x = formatEvent(ev({ kind: EVENT_CLOSE, oldstate: 9, duration_ns: 2_000_000, bytes_acked: 12, bytes_received: 7, flags: FLAG_SYN_ACKED | FLAG_FIN_ACKED | FLAG_FIN_RECEIVED }));
    expect(c).toBe('connect      42 curl            10.0.0.2:40000        10.0.0.1:80');
    expect(x).toBe('close        42 curl            10.0.0.2:40000        10.0.0.1:80                  10        6     2.000');
    expect(x.length).toBe(HEADER.length);
    expect(formatEvent(ev({ kind: EVENT_CLOSE, oldstate: 2 }))).toMatch(/^failed /);
  });
});
