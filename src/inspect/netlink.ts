/**
 * rtnetlink messages for listing tc filters (RTM_GETTFILTER dumps), built
 * and parsed here as plain bytes; src/ffi/inspect.ts sends them. Only what
 * `bpfts net list` needs: the BPF filters of a clsact hook.
 */

const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const RTM_NEWTFILTER = 44;
const RTM_GETTFILTER = 46;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
const NLMSG_HDRLEN = 16;
const TCMSG_LEN = 20;
const TCA_KIND = 1;
const TCA_OPTIONS = 2;
const TCA_BPF_NAME = 7;
const TCA_BPF_FLAGS = 8;
const TCA_BPF_ID = 11;
const TCA_BPF_FLAG_ACT_DIRECT = 1;

/** The clsact parents: TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS / TC_H_MIN_EGRESS). */
export const CLSACT_PARENT = { ingress: 0xfffffff2, egress: 0xfffffff3 } as const;

/** A BPF tc filter, as a dump lists it. */
export interface TcBpfFilter {
  ifindex: number;
  parent: number;
  /** The filter's handle. */
  handle: number;
  /** Its priority ("pref" in `tc filter show`). */
  priority: number;
  /** The program's id. */
  progId: number;
  /** The name tc shows: the object file and section, e.g. "xdp_dnat.bpf.o:[tc]", or libbpf's program name. */
  name: string;
  /** direct-action mode. */
  directAction: boolean;
}

/** The request that dumps the filters of `ifindex` under `parent`. */
export function tfilterDumpRequest(ifindex: number, parent: number, seq = 1): Buffer {
  const b = Buffer.alloc(NLMSG_HDRLEN + TCMSG_LEN);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(RTM_GETTFILTER, 4);
  b.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
  b.writeUInt32LE(seq, 8);
  b.writeInt32LE(ifindex, NLMSG_HDRLEN + 4);
  b.writeUInt32LE(parent >>> 0, NLMSG_HDRLEN + 12);
  return b;
}

const align4 = (n: number) => (n + 3) & ~3;

/** The attributes (type, payload) in `b` from `start` to `end`. */
export function attributes(b: Buffer, start: number, end: number): Array<{ type: number; data: Buffer }> {
  const out: Array<{ type: number; data: Buffer }> = [];
  for (let o = start; o + 4 <= end;) {
    const len = b.readUInt16LE(o);
    if (len < 4 || o + len > end) break;
    out.push({ type: b.readUInt16LE(o + 2) & 0x3fff, data: b.subarray(o + 4, o + len) });
    o += align4(len);
  }
  return out;
}

/** The messages of one netlink datagram: type and whole message (header included). */
function messages(d: Buffer): Array<{ type: number; msg: Buffer }> {
  const out: Array<{ type: number; msg: Buffer }> = [];
  for (let o = 0; o + NLMSG_HDRLEN <= d.length;) {
    const len = d.readUInt32LE(o);
    if (len < NLMSG_HDRLEN || o + len > d.length) break;
    out.push({ type: d.readUInt16LE(o + 4), msg: d.subarray(o, o + len) });
    o += align4(len);
  }
  return out;
}

/** True when the datagram ends a dump (NLMSG_DONE or an error). */
export function dumpEnded(d: Buffer): boolean {
  return messages(d).some((m) => m.type === NLMSG_DONE || m.type === NLMSG_ERROR);
}

const cstr = (b: Buffer) => { const z = b.indexOf(0); return b.toString('utf8', 0, z < 0 ? b.length : z); };

/**
 * The BPF filters in the reply datagrams of a tfilter dump. Returns them, or
 * the errno of an NLMSG_ERROR in the reply (an error message with errno 0
 * is an acknowledgement, not an error).
 */
export function parseTfilterDump(datagrams: Buffer[]): TcBpfFilter[] | { errno: number } {
  const out: TcBpfFilter[] = [];
  for (const d of datagrams) {
    for (const { type, msg } of messages(d)) {
      if (type === NLMSG_ERROR) {
        const e = -msg.readInt32LE(NLMSG_HDRLEN);
        if (e !== 0) return { errno: e };
        continue;
      }
      if (type !== RTM_NEWTFILTER || msg.length < NLMSG_HDRLEN + TCMSG_LEN) continue;
      const t = NLMSG_HDRLEN;
      const attrs = attributes(msg, t + TCMSG_LEN, msg.length);
      const kind = attrs.find((a) => a.type === TCA_KIND);
      const opts = attrs.find((a) => a.type === TCA_OPTIONS);
      if (!kind || cstr(kind.data) !== 'bpf' || !opts) continue;
      const inner = attributes(opts.data, 0, opts.data.length);
      const id = inner.find((a) => a.type === TCA_BPF_ID);
      if (!id) continue;
      const name = inner.find((a) => a.type === TCA_BPF_NAME);
      const flags = inner.find((a) => a.type === TCA_BPF_FLAGS);
      out.push({
        ifindex: msg.readInt32LE(t + 4),
        handle: msg.readUInt32LE(t + 8),
        parent: msg.readUInt32LE(t + 12),
        priority: msg.readUInt32LE(t + 16) >>> 16,
        progId: id.data.readUInt32LE(0),
        name: name ? cstr(name.data) : '',
        directAction: flags ? (flags.data.readUInt32LE(0) & TCA_BPF_FLAG_ACT_DIRECT) !== 0 : false,
      });
    }
  }
  return out;
}
