/**
 * packet_inspect: the user side of the lesson. The kernel program prints
 *   packet_inspect <tag>: <src hex> <dst hex> <proto>
 * for every IPv4 packet (addresses as host-order hex, see the .bpf.c); this
 * module picks those lines out of trace_pipe and renders them as dotted
 * quads and protocol names, or as JSON.
 */
import { formatIpv4, parseIpv4, protoLabel, protoName } from '../codec.js';
import { openTracePipe, type TraceLine } from '../trace.js';

/** One IPv4 packet the program saw. */
export interface InspectEvent {
  /** Seconds since boot (trace_pipe's clock). */
  timestamp: number;
  /** The task that was running when the packet arrived ("<idle>-0", "ping-1234"). */
  task: string;
  src: string;
  dst: string;
  /** IP protocol number. */
  proto: number;
  /** "tcp", "udp", ... or the number as text. */
  protoName: string;
}

/** The prefix of this program's trace lines for a given trace_tag. */
export function inspectPrefix(tag: number): string {
  return `packet_inspect ${tag}: `;
}

const BODY = /^([0-9a-f]{1,8}) ([0-9a-f]{1,8}) (\d{1,3})$/;

/**
 * Parses the message of a packet_inspect trace line carrying `tag`;
 * undefined for any other line (another program, another tag, malformed).
 */
export function parseInspectMessage(message: string, tag: number): Pick<InspectEvent, 'src' | 'dst' | 'proto' | 'protoName'> | undefined {
  const prefix = inspectPrefix(tag);
  if (!message.startsWith(prefix)) return undefined;
  const m = BODY.exec(message.slice(prefix.length));
  if (!m) return undefined;
  const proto = Number(m[3]);
  if (proto > 255) return undefined;
  return { src: formatIpv4(parseInt(m[1], 16)), dst: formatIpv4(parseInt(m[2], 16)), proto, protoName: protoName(proto) };
}

/** The event of a parsed trace_pipe line, or undefined when it is not this program's (with this tag). */
export function inspectEvent(line: TraceLine, tag: number): InspectEvent | undefined {
  const p = parseInspectMessage(line.message, tag);
  return p && { timestamp: line.timestamp, task: line.task, ...p };
}

/** One human-readable line: "  1234.567890  10.201.0.2      -> 10.201.0.1       udp (17)". */
export function formatInspect(e: InspectEvent): string {
  return `${e.timestamp.toFixed(6).padStart(14)}  ${e.src.padEnd(15)} -> ${e.dst.padEnd(15)}  ${protoLabel(e.proto)}`;
}

/** One JSON line: {"ts", "src", "dst", "proto", "name"}. */
export function inspectJson(e: InspectEvent): string {
  return JSON.stringify({ ts: e.timestamp, src: e.src, dst: e.dst, proto: e.proto, name: e.protoName });
}

/** A stream of this program's packets; close() is idempotent. */
export interface InspectStream extends AsyncIterable<InspectEvent> {
  close(): void;
}

/**
 * Streams the packets the program (loaded with `tag` as its trace_tag)
 * reports, from trace_pipe. Throws a BpfError when trace_pipe cannot be opened.
 */
export function openInspectStream(tag: number): InspectStream {
  const prefix = inspectPrefix(tag);
  const pipe = openTracePipe((l) => l.message.startsWith(prefix));
  return {
    close: () => pipe.close(),
    async *[Symbol.asyncIterator]() {
      for await (const l of pipe) {
        const e = inspectEvent(l, tag);
        if (e) yield e;
      }
    },
  };
}

/** What ipv4Frame builds. */
export interface Ipv4FrameSpec {
  src: string;
  dst: string;
  proto: number;
  /** Bytes after the IP header (zeros). Default 8. */
  payloadLen?: number;
  /** IHL in 32-bit words; default 5 (no options). Values below 5 make a malformed header. */
  ihl?: number;
  /** ip->tot_len; default the real length (header + payload). */
  totLen?: number;
  /** Ethertype; default 0x0800 (IPv4). */
  ethertype?: number;
  /** Cut the frame to this many bytes (a truncated packet). */
  truncateTo?: number;
}

/**
 * Builds an Ethernet + IPv4 frame as the parser of these lessons sees it
 * (MACs 02:00:00:00:00:01/02, TTL 64, no checksum): the input of
 * Program.testRun() when trying a program on a crafted packet. Throws a
 * TypeError for a malformed address.
 */
export function ipv4Frame(spec: Ipv4FrameSpec): Buffer {
  const ihl = spec.ihl ?? 5;
  const hdr = Math.max(ihl, 5) * 4;
  const payloadLen = spec.payloadLen ?? 8;
  const f = Buffer.alloc(14 + hdr + payloadLen);
  f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1], 0);
  f.writeUInt16BE(spec.ethertype ?? 0x0800, 12);
  f[14] = 0x40 | (ihl & 0xf);
  f.writeUInt16BE(spec.totLen ?? hdr + payloadLen, 16);
  f[22] = 64;
  f[23] = spec.proto;
  f.writeUInt32BE(parseIpv4(spec.src), 26);
  f.writeUInt32BE(parseIpv4(spec.dst), 30);
  return spec.truncateTo === undefined ? f : f.subarray(0, spec.truncateTo);
}
