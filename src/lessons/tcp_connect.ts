/**
 * tcp_connect: the user side of the lesson. The kernel program
 * (bpf/tcp_connect) sends one struct tcp_event per outgoing IPv4 TCP
 * connect and one per close of such a connection (duration, bytes acked and
 * received, as bcc's tcplife) through the `events` ring buffer. It enters
 * by the seed's kprobe on tcp_connect where the kernel has kprobes, else by
 * the sock:inet_sock_set_state tracepoint alone. This module mirrors the
 * event, picks the probe, attaches it, and formats events as text or NDJSON.
 */
import { Option, type Command } from 'commander';
import { struct, u32, u64 } from '../codec.js';
import type { BpfObject } from '../object.js';
import { RingBufReader } from '../ringbuf/reader.js';
import { kernelHasFunction, probeKprobes } from '../features.js';
import type { CommonOptions, LessonContext } from '../cli/lesson.js';
import type { SharedLayout } from './shared.js';

/** struct tcp_event (bpf/tcp_connect/tcp_connect.h): 72 bytes. */
export const TcpEvent = struct('tcp_event', {
  ts_ns: 'u64',
  duration_ns: 'u64',
  bytes_acked: 'u64',
  bytes_received: 'u64',
  pid: 'u32',
  saddr: 'ipv4',
  daddr: 'ipv4',
  sport: 'u16',
  dport: 'u16',
  kind: 'u8',
  oldstate: 'u8',
  flags: 'u8',
  pad: { pad: 5 },
  comm: { bytes: 16 },
});
/** A decoded event: addresses as dotted quads, ports in host order. */
export type TcpEventValue = ReturnType<typeof TcpEvent.zero>;

/** The structs shared with the kernel side, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [{ object: 'tcp_connect', cName: 'tcp_event', codec: TcpEvent }];

/** The ring buffer map the events go through. */
export const EVENTS_MAP = 'events';
/** The per-CPU array counting events the ring had no room for. */
export const LOST_MAP = 'lost';
/** tcp_event.kind of a connect. */
export const EVENT_CONNECT = 1;
/** tcp_event.kind of a close. */
export const EVENT_CLOSE = 2;
/** tcp_event.flags: bytes_acked counts our SYN (the connect completed). */
export const FLAG_SYN_ACKED = 1;
/** tcp_event.flags: bytes_acked counts our FIN (it was acknowledged). */
export const FLAG_FIN_ACKED = 2;
/** tcp_event.flags: bytes_received counts the peer's FIN. */
export const FLAG_FIN_RECEIVED = 4;
/** TCP_SYN_SENT: a close whose oldstate is this ended a connect that never completed. */
export const TCP_SYN_SENT = 2;

/** The kernel function the seed's bpftrace probes. */
export const KPROBE_FUNC = 'tcp_connect';
/** The tracepoint used everywhere (closes always; connects without kprobes). */
export const TRACEPOINT: readonly [string, string] = ['sock', 'inet_sock_set_state'];

/** How connects are traced: `auto` picks the kprobe where the kernel has one. */
export type ProbeChoice = 'auto' | 'kprobe' | 'tracepoint';
/** The lesson's own options. */
export interface TcpConnectOptions { probe: ProbeChoice }

/** What the kernel offers, for choosing the probe. */
export interface ProbeFacts { kprobes: boolean; hasFunction: boolean }

/**
 * The probe to use for `choice` given the kernel's facts: `auto` is the
 * kprobe when the kernel has kprobes and the function, else the tracepoint.
 * An explicit `kprobe` is kept even where it will fail (attach then says why
 * in one line).
 */
export function chooseProbe(choice: ProbeChoice, facts: ProbeFacts): 'kprobe' | 'tracepoint' {
  if (choice !== 'auto') return choice;
  return facts.kprobes && facts.hasFunction ? 'kprobe' : 'tracepoint';
}

/** The running kernel's facts (cached by the probes). Never throws. */
export function kernelProbeFacts(): ProbeFacts {
  const kprobes = probeKprobes();
  return { kprobes, hasFunction: kprobes && kernelHasFunction(KPROBE_FUNC) };
}

/** The one line saying which probe the loader uses, and why. */
export function probeLine(which: 'kprobe' | 'tracepoint', choice: ProbeChoice, facts: ProbeFacts): string {
  if (which === 'kprobe') return `connects: kprobe on ${KPROBE_FUNC} (the seed's probe); closes: tracepoint ${TRACEPOINT.join(':')}`;
  const why = choice === 'tracepoint' ? 'asked for with --probe tracepoint'
    : !facts.kprobes ? 'this kernel has no kprobes' : `the kernel has no function ${KPROBE_FUNC}`;
  return `connects and closes: tracepoint ${TRACEPOINT.join(':')} (${why})`;
}

/** Adds --probe. */
export function addProbeOption(cmd: Command): void {
  cmd.addOption(new Option('--probe <probe>', 'how to see connects: the kprobe on tcp_connect where the kernel has kprobes, or the tracepoint')
    .choices(['auto', 'kprobe', 'tracepoint']).default('auto'));
}

/** Before load: tells the kernel program whether the kprobe reports connects. Throws a BpfError. */
export function configureProbe(obj: BpfObject, opts: CommonOptions & TcpConnectOptions): void {
  const which = chooseProbe(opts.probe, kernelProbeFacts());
  obj.setConst('use_kprobe', which === 'kprobe' ? 1 : 0);
}

/**
 * The loader's attach step: the tracepoint always, the kprobe when chosen;
 * says which in one line. Throws a BpfError (one line) when the kprobe
 * cannot be attached (no kprobes in this kernel: ENOENT).
 */
export function attachProbes(ctx: LessonContext<TcpConnectOptions>): void {
  const facts = kernelProbeFacts();
  const which = chooseProbe(ctx.opts.probe, facts);
  if (which === 'kprobe') ctx.own(ctx.obj.program('tcp_connect_kprobe').attachKprobe(KPROBE_FUNC));
  ctx.own(ctx.obj.program('tcp_set_state').attachTracepoint(TRACEPOINT[0], TRACEPOINT[1]));
  ctx.log(probeLine(which, ctx.opts.probe, facts));
  ctx.log('attached; Ctrl-C to stop');
}

/** Opens the events ring of a loaded object, with the kernel's lost counter. Throws a BpfError. */
export function openEvents(obj: BpfObject): RingBufReader<TcpEventValue> {
  const lost = obj.perCpuMap(LOST_MAP, u32, u64);
  return RingBufReader.open(obj, EVENTS_MAP, { codec: TcpEvent, lost: () => lost.sum(0) });
}

/** A NUL-terminated command name. */
export function commName(b: Uint8Array): string {
  const end = b.indexOf(0);
  return Buffer.from(b.subarray(0, end < 0 ? b.length : end)).toString('utf8');
}

/** An event as plain data (what --json prints, one object per line). */
export interface TcpEventJson {
  event: 'connect' | 'close';
  pid: number;
  comm: string;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
  /** close only */
  durationMs?: number;
  /** close only: data bytes sent and acknowledged (bytesAcked without our SYN and FIN) */
  tx?: number;
  /** close only: data bytes received (bytesReceived without the peer's FIN) */
  rx?: number;
  /** close only: tcp_sock.bytes_acked as the kernel counts it (sequence numbers: SYN and FIN included) */
  bytesAcked?: number;
  /** close only: tcp_sock.bytes_received as the kernel counts it (the peer's FIN included) */
  bytesReceived?: number;
  /** close only: the connect never completed (the socket closed in SYN_SENT) */
  failed?: boolean;
}

/** The event as plain data. */
export function eventData(e: TcpEventValue): TcpEventJson {
  const base = { pid: e.pid, comm: commName(e.comm), saddr: e.saddr, sport: e.sport, daddr: e.daddr, dport: e.dport };
  if (e.kind !== EVENT_CLOSE) return { event: 'connect', ...base };
  return {
    event: 'close', ...base,
    durationMs: Math.round(e.duration_ns / 1000) / 1000,
    tx: Math.max(0, e.bytes_acked - (e.flags & FLAG_SYN_ACKED ? 1 : 0) - (e.flags & FLAG_FIN_ACKED ? 1 : 0)),
    rx: Math.max(0, e.bytes_received - (e.flags & FLAG_FIN_RECEIVED ? 1 : 0)),
    bytesAcked: e.bytes_acked, bytesReceived: e.bytes_received,
    ...(e.oldstate === TCP_SYN_SENT ? { failed: true } : {}),
  };
}

/** One NDJSON line. */
export function eventJson(e: TcpEventValue): string {
  return JSON.stringify(eventData(e));
}

/** The text header. */
export const HEADER = `${'EVENT'.padEnd(8)}${'PID'.padStart(7)} ${'COMM'.padEnd(16)}${'SADDR:SPORT'.padEnd(22)}${'DADDR:DPORT'.padEnd(22)}${'TX_B'.padStart(9)}${'RX_B'.padStart(9)}${'MS'.padStart(10)}`;

/** One text line under HEADER. */
export function formatEvent(e: TcpEventValue): string {
  const d = eventData(e);
  const head = `${(d.failed ? 'failed' : d.event).padEnd(8)}${String(d.pid).padStart(7)} ${d.comm.padEnd(16)}${`${d.saddr}:${d.sport}`.padEnd(22)}${`${d.daddr}:${d.dport}`.padEnd(22)}`;
  if (d.event === 'connect') return head.trimEnd();
  return `${head}${String(d.tx).padStart(9)}${String(d.rx).padStart(9)}${d.durationMs!.toFixed(3).padStart(10)}`;
}

