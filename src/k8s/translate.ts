/**
 * From Kubernetes objects to the load balancer's desired state: every
 * ClusterIP service port, with its backends from the service's
 * EndpointSlices. Pure: no I/O, no clock, the same objects give the same
 * result in the same order (ServiceTable.apply recognises an unchanged
 * service in the same place cheaply).
 *
 * The rules, as kube-proxy reads the same objects:
 *
 * - Services of type ClusterIP, NodePort and LoadBalancer (all have a
 *   clusterIP). Headless (`clusterIP: None`), no clusterIP, ExternalName:
 *   skipped. The VIP is the first IPv4 address of spec.clusterIPs (or
 *   spec.clusterIP); a service with only an IPv6 one is skipped.
 * - Every spec.ports entry is one lb Service `VIP:port/proto`, TCP or UDP
 *   (protocol left out = TCP). SCTP, an unknown protocol or a port out of
 *   range: that port is skipped.
 * - A slice belongs to the service named by its label
 *   `kubernetes.io/service-name`, in the same namespace; only addressType
 *   IPv4 (IPv6 and FQDN slices are ignored without a word: a dual-stack
 *   service has one of each).
 * - The backend port of a service port named N with protocol P is the port
 *   of the slice's ports entry with the same name (left out and '' are the
 *   same) and protocol; a named targetPort is thus resolved through the
 *   slice, which holds the number per pod.
 * - An endpoint that is ready (conditions.ready left out = ready) is a
 *   backend of weight 1; one not ready but serving and terminating has
 *   weight 0 (drained: keeps its flows, takes no new ones); any other is
 *   left out. Each address of an endpoint is a backend; the same ip:port in
 *   two slices (or twice in one) is one backend, ready winning.
 * - A service port with no backend is a Service with backends []: it
 *   takes no new flows.
 * - More than LB_MAX_BACKENDS backends: the ready ones first, then the
 *   drained ones, each by address; the rest are left out with a Skipped line.
 * - What ServiceTable.apply would refuse for the whole snapshot is left out
 *   here piece by piece: a second service with the same VIP:port/proto (the
 *   first in namespace/name order keeps it), a backend whose address is a
 *   VIP of a service (left out of its service).
 *
 * A malformed object (a port out of range, an unknown protocol, a bad or
 * reserved address, a missing field) costs one Skipped entry for the piece
 * that is wrong and never stops the rest; desiredState() does not throw on
 * any input. The Skipped list is as deterministic as the services, so a
 * caller can log only the lines it has not logged before.
 *
 * Where kube-proxy differs: it takes only the first address of an endpoint
 * (the endpointslice controller writes exactly one); here every address is
 * a backend, as the control plane's contract asks.
 *
 * Speed: the objects are read as immutable, the way the informers' caches
 * hold them (an update replaces an object, never changes it in place).
 * What is read from each Service and EndpointSlice object, and the lb
 * services built from a Service and its slices, are remembered per object
 * (WeakMaps: forgotten with the objects), so a call after one slice changed
 * re-reads that slice and rebuilds its service's ports and nothing else,
 * and hands back the same Service objects for every unchanged port. A
 * caller that changes an object in place must pass a copy instead; the
 * result is to be read, not changed.
 */
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { formatIpv4 } from '../codec.js';
import { LB_MAX_BACKENDS } from '../lb/layout.js';
import { checkIp, type Backend, type Service, type ServiceProto } from '../lb/model.js';

/** An object, or a piece of one, that desiredState() left out, and why. */
export interface Skipped {
  kind: 'Service' | 'EndpointSlice';
  namespace: string;
  name: string;
  /** One line: which piece and what is wrong with it ("port 70000/TCP: port out of range (1-65535)"). */
  reason: string;
}

/** What the load balancer should hold, and what could not be taken. */
export interface DesiredState {
  /** Sorted by namespace, name, then port and protocol. */
  services: Service[];
  skipped: Skipped[];
}

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** A slice's ports entry that can be used. */
interface SlicePort {
  /** '' for none. */
  name: string;
  proto: ServiceProto;
  port: number;
}
/** The addresses of a slice's usable endpoints, by address, ready first, each once; as parallel arrays (no object per address). */
interface SliceAddrs {
  ips: number[];
  /** Canonical dotted quads. */
  texts: string[];
  /** 1 ready, 0 drained. */
  weights: number[];
}
/** What a slice gives, read once per slice object. */
interface ReadSlice {
  ports: SlicePort[];
  addrs: SliceAddrs;
  /** Its bad pieces. */
  skipped: Skipped[];
}
/** A slice object's identity: which service it belongs to ("ns/name", '' for none of ours), its name; its contents read when a service needs them. */
interface SliceInfo {
  owner: string;
  name: string;
  read?: ReadSlice;
}
/** A service port that can be used. */
interface SvcPort {
  name: string;
  proto: ServiceProto;
  port: number;
  /** The protocol as the API wrote it (undefined: left out), for messages. */
  rawProto: unknown;
  /** "vip:port/proto", canonical. */
  key: string;
}
/** What a Service object gives, read once per object. */
interface SvcHead {
  ns: string;
  name: string;
  /** "ns/name" */
  id: string;
  /** Its bad pieces (or why it is skipped as a whole). */
  skipped: Skipped[];
  /** Undefined when the service is skipped. */
  vip?: string;
  vipNum: number;
  /** By port, then protocol. */
  ports: SvcPort[];
}
/** The lb services built from a Service and the slices it had then. */
interface SvcBuilt {
  reads: ReadSlice[];
  /** One per head.ports entry, in that order. */
  services: Service[];
  /** One per head.ports entry: the line for backends left out over LB_MAX_BACKENDS. */
  over: Array<Skipped | undefined>;
  /** The lowest and highest backend address of all ports (lo > hi for none): most services need no look for backends that are VIPs. */
  lo: number;
  hi: number;
}

/** The skipped list of the many objects with nothing wrong: shared, never pushed to. */
const NONE: Skipped[] = Object.freeze([]) as unknown as Skipped[];

const sliceInfos = new WeakMap<object, SliceInfo>();
const svcHeads = new WeakMap<object, SvcHead>();
const built = new WeakMap<object, SvcBuilt>();

/** A backend before duplicates go. */
interface Cand {
  ip: number;
  ipText: string;
  port: number;
  weight: number;
}
/** By address, then port, then ready before drained. */
const byAddr = (a: Cand, b: Cand): number => a.ip - b.ip || a.port - b.port || b.weight - a.weight;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const validPort = (p: unknown): p is number => typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** 'tcp' | 'udp' for the API's protocol (left out = TCP), 'unsupported' for SCTP, undefined for anything else. */
function protoOfApi(p: unknown): ServiceProto | 'unsupported' | undefined {
  if (p === undefined || p === null || p === 'TCP') return 'tcp';
  if (p === 'UDP') return 'udp';
  if (p === 'SCTP') return 'unsupported';
  return undefined;
}
/** "http 80/TCP", "80/TCP" for a port as the API wrote it. */
function portText(name: string, port: unknown, protocol: unknown): string {
  const proto = protocol === undefined || protocol === null ? 'TCP' : String(protocol);
  return `${name ? `${name} ` : ''}${String(port)}/${proto}`;
}
/** True for a dotted quad checkIp took that has no octet with a leading zero: it is its own canonical form (the API writes them so), no new string needed. */
function canonical(s: string): boolean {
  for (let i = 0; i < s.length - 1; i++) {
    if (s.charCodeAt(i) === 48 && (i === 0 || s.charCodeAt(i - 1) === 46) && s.charCodeAt(i + 1) !== 46) return false;
  }
  return true;
}
/** An IPv6 address (has a colon); such a service or endpoint is out of scope, not malformed. */
const looksIpv6 = (s: unknown): boolean => typeof s === 'string' && s.includes(':');

/** Which service a slice object belongs to; '' when none of ours (not IPv4, no label, not an object). */
function sliceInfo(sl: V1EndpointSlice): SliceInfo {
  let info = sliceInfos.get(sl);
  if (info) return info;
  let owner = '';
  let name = '';
  if (sl.addressType === 'IPv4' && isObject(sl.metadata)) {
    const labels = sl.metadata.labels;
    const svc = isObject(labels) ? str(labels[SERVICE_NAME_LABEL]) : '';
    if (svc) owner = `${str(sl.metadata.namespace)}/${svc}`;
    name = str(sl.metadata.name);
  }
  info = { owner, name };
  sliceInfos.set(sl, info);
  return info;
}

/** Reads a slice's usable ports and addresses, with a Skipped entry for each bad piece. */
function readSlice(sl: V1EndpointSlice, name: string): ReadSlice {
  let skipped = NONE;
  const ns = str(sl.metadata?.namespace);
  const skip = (reason: string) => {
    if (skipped === NONE) skipped = [];
    skipped.push({ kind: 'EndpointSlice', namespace: ns, name, reason });
  };
  const ports: SlicePort[] = [];
  const rawPorts: unknown = sl.ports;
  if (Array.isArray(rawPorts)) {
    for (const p of rawPorts as unknown[]) {
      if (!isObject(p)) { skip('a ports entry is not an object'); continue; }
      const pname = str(p.name);
      const proto = protoOfApi(p.protocol);
      if (proto === undefined) { skip(`port ${portText(pname, p.port, p.protocol)}: unknown protocol '${String(p.protocol)}'`); continue; }
      // An SCTP port can only match an SCTP service port, which is skipped (and said) already.
      if (proto === 'unsupported') continue;
      if (!validPort(p.port)) { skip(`port ${portText(pname, p.port, p.protocol)}: port out of range (1-65535)`); continue; }
      ports.push({ name: pname, proto, port: p.port });
    }
  }
  let ips: number[] = [];
  let texts: string[] = [];
  let weights: number[] = [];
  const rawEps: unknown = sl.endpoints;
  if (Array.isArray(rawEps)) {
    for (const ep of rawEps as unknown[]) {
      if (!isObject(ep)) { skip('an endpoint is not an object'); continue; }
      const c = isObject(ep.conditions) ? ep.conditions : undefined;
      const ready = c === undefined || c.ready === undefined || c.ready === null || c.ready === true;
      const weight = ready ? 1 : c.serving === true && c.terminating === true ? 0 : -1;
      if (weight < 0) continue;
      const list: unknown = ep.addresses;
      if (!Array.isArray(list) || list.length === 0) {
        const ref = isObject(ep.targetRef) ? str(ep.targetRef.name) : '';
        skip(`endpoint ${ref ? `${ref} ` : ''}has no addresses`);
        continue;
      }
      for (const a of list as unknown[]) {
        let ip: number;
        try {
          ip = checkIp('endpoint address', a);
        } catch (e) {
          skip((e as Error).message);
          continue;
        }
        ips.push(ip);
        texts.push(canonical(a as string) ? (a as string) : formatIpv4(ip));
        weights.push(weight);
      }
    }
  }
  // By address, ready first, each address once: a service port with one slice takes this as it is.
  let inOrder = true;
  for (let i = 1; i < ips.length && inOrder; i++) inOrder = ips[i] > ips[i - 1];
  if (!inOrder) {
    const idx = ips.map((_, i) => i).sort((a, b) => ips[a] - ips[b] || weights[b] - weights[a]);
    const [oi, ot, ow] = [ips, texts, weights];
    ips = [];
    texts = [];
    weights = [];
    for (const i of idx) {
      if (ips.length && ips[ips.length - 1] === oi[i]) continue;
      ips.push(oi[i]);
      texts.push(ot[i]);
      weights.push(ow[i]);
    }
  }
  return { ports, addrs: { ips, texts, weights }, skipped };
}

/** Reads a Service object: its VIP and usable ports, or why it is skipped. */
function readService(svc: V1Service): SvcHead {
  const md = isObject(svc.metadata) ? svc.metadata : {};
  const ns = str(md.namespace);
  const name = str(md.name);
  const head: SvcHead = { ns, name, id: `${ns}/${name}`, skipped: NONE, ports: [], vipNum: 0 };
  const skip = (reason: string) => {
    if (head.skipped === NONE) head.skipped = [];
    head.skipped.push({ kind: 'Service', namespace: ns, name, reason });
    return head;
  };
  if (!name) return skip('no metadata.name');
  const spec = svc.spec;
  if (!isObject(spec)) return skip('no spec');
  if (spec.type === 'ExternalName') return skip('type ExternalName has no ClusterIP');
  const ips: unknown[] = Array.isArray(spec.clusterIPs) && spec.clusterIPs.length ? spec.clusterIPs : [spec.clusterIP];
  if (ips[0] === 'None') return skip('headless (clusterIP None)');
  if (ips[0] === undefined || ips[0] === null || ips[0] === '') return skip('no clusterIP');
  const v4 = ips.find((ip) => !looksIpv6(ip));
  if (v4 === undefined) return skip(`clusterIP ${String(ips[0])} is IPv6, only IPv4 is supported`);
  let vipNum: number;
  try {
    vipNum = checkIp('clusterIP', v4);
  } catch (e) {
    return skip((e as Error).message);
  }
  const vip = formatIpv4(vipNum);
  const rawPorts: unknown = spec.ports;
  if (!Array.isArray(rawPorts) || rawPorts.length === 0) return skip('no ports');
  for (const p of rawPorts as unknown[]) {
    if (!isObject(p)) { skip('a ports entry is not an object'); continue; }
    const pname = str(p.name);
    const proto = protoOfApi(p.protocol);
    if (proto === undefined) { skip(`port ${portText(pname, p.port, p.protocol)}: unknown protocol '${String(p.protocol)}'`); continue; }
    if (proto === 'unsupported') { skip(`port ${portText(pname, p.port, p.protocol)}: protocol ${String(p.protocol)} is not supported (TCP and UDP are)`); continue; }
    if (!validPort(p.port)) { skip(`port ${portText(pname, p.port, p.protocol)}: port out of range (1-65535)`); continue; }
    head.ports.push({ name: pname, proto, port: p.port, rawProto: p.protocol, key: `${vip}:${p.port}/${proto}` });
  }
  head.ports.sort((a, b) => a.port - b.port || cmp(a.proto, b.proto));
  head.vip = vip;
  head.vipNum = vipNum;
  return head;
}

/** The lb services of one service's ports from its slices' reads (sorted by slice name). */
function build(head: SvcHead, reads: ReadSlice[]): SvcBuilt {
  const services: Service[] = [];
  const over: Array<Skipped | undefined> = [];
  let lo = 2 ** 32;
  let hi = -1;
  for (const rs of reads) {
    const { ips } = rs.addrs;
    if (!ips.length) continue;
    lo = Math.min(lo, ips[0]);
    hi = Math.max(hi, ips[ips.length - 1]);
  }
  for (const sp of head.ports) {
    // The matching port of each slice; a slice without one gives nothing.
    const parts: Array<{ addrs: SliceAddrs; port: number }> = [];
    for (const rs of reads) {
      for (const q of rs.ports) if (q.name === sp.name && q.proto === sp.proto) { if (rs.addrs.ips.length) parts.push({ addrs: rs.addrs, port: q.port }); break; }
    }
    let backends: Backend[];
    let ready = 0;
    if (parts.length === 1) {
      // One slice (the common case): its addresses are sorted and unique already.
      const { addrs: { texts, weights }, port } = parts[0];
      backends = new Array<Backend>(texts.length);
      for (let i = 0; i < texts.length; i++) {
        backends[i] = { ip: texts[i], port, weight: weights[i] };
        if (weights[i] > 0) ready++;
      }
    } else {
      // Several: sorted by address then port, ready before drained; the first of each ip:port wins.
      const cand: Cand[] = [];
      for (const { addrs: a, port } of parts) for (let i = 0; i < a.ips.length; i++) cand.push({ ip: a.ips[i], ipText: a.texts[i], port, weight: a.weights[i] });
      cand.sort(byAddr);
      backends = [];
      for (let i = 0; i < cand.length; i++) {
        const c = cand[i];
        if (i > 0 && c.ip === cand[i - 1].ip && c.port === cand[i - 1].port) continue;
        backends.push({ ip: c.ipText, port: c.port, weight: c.weight });
        if (c.weight > 0) ready++;
      }
    }
    let line: Skipped | undefined;
    if (backends.length > LB_MAX_BACKENDS) {
      const n = backends.length;
      // Ready ones first: the drained ones fill what is left, by address.
      let keepReady = Math.min(ready, LB_MAX_BACKENDS);
      let room = LB_MAX_BACKENDS - keepReady;
      backends = backends.filter((b) => (b.weight! > 0 ? keepReady-- > 0 : room-- > 0));
      line = { kind: 'Service', namespace: head.ns, name: head.name, reason: `port ${portText(sp.name, sp.port, sp.rawProto)}: ${n} backends, keeping ${LB_MAX_BACKENDS} (the most the load balancer holds; ready ones first, by address)` };
    }
    services.push({ vip: head.vip!, port: sp.port, proto: sp.proto, backends });
    over.push(line);
  }
  return { reads, services, over, lo, hi };
}

const sameList = <T>(a: readonly T[], b: readonly T[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Every ClusterIP service port with its backends, from the objects as the
 * API serves them (plain JSON or client-node's classes: only the fields
 * are read). Follows the rules in this module's comment. Never throws:
 * whatever cannot be taken is in `skipped`, one entry per piece. Every
 * result is accepted by ServiceTable.apply (src/lb/model.ts validateServices).
 * The objects are taken as immutable and the result is shared with later
 * calls (see the module's comment). Needs no kernel.
 */
export function desiredState(services: Iterable<V1Service>, slices: Iterable<V1EndpointSlice>): DesiredState {
  const skipped: Skipped[] = [];

  // Slices by the service they belong to.
  const byService = new Map<string, Array<{ info: SliceInfo; slice: V1EndpointSlice }>>();
  for (const sl of slices) {
    if (!isObject(sl)) continue;
    const info = sliceInfo(sl);
    if (!info.owner) continue;
    const list = byService.get(info.owner);
    if (list) list.push({ info, slice: sl });
    else byService.set(info.owner, [{ info, slice: sl }]);
  }

  // Services in namespace/name order.
  const heads: Array<{ head: SvcHead; svc: V1Service }> = [];
  for (const svc of services) {
    if (!isObject(svc)) { skipped.push({ kind: 'Service', namespace: '', name: '', reason: 'not an object' }); continue; }
    let head = svcHeads.get(svc);
    if (!head) { head = readService(svc); svcHeads.set(svc, head); }
    heads.push({ head, svc });
  }
  heads.sort((a, b) => cmp(a.head.ns, b.head.ns) || cmp(a.head.name, b.head.name));

  const out: Service[] = [];
  /** "ns/name" of the service holding each VIP:port/proto, for the duplicates. */
  const owners = new Map<string, string>();
  /** VIP -> the first service key with it, for backends that are VIPs; the lowest and highest VIP. */
  const vips = new Map<string, string>();
  let vipLo = 2 ** 32;
  let vipHi = -1;
  /** The service each entry of out came from, and what it was built from, by index. */
  const outOwner: SvcHead[] = [];
  const outBuilt: SvcBuilt[] = [];

  for (const { head, svc } of heads) {
    for (const s of head.skipped) skipped.push(s);
    if (head.vip === undefined || head.ports.length === 0) continue;
    const refs = byService.get(head.id) ?? [];
    if (refs.length > 1) refs.sort((a, b) => cmp(a.info.name, b.info.name));
    const reads = refs.map((r) => (r.info.read ??= readSlice(r.slice, r.info.name)));
    for (const rs of reads) for (const s of rs.skipped) skipped.push(s);
    let b = built.get(svc);
    if (!b || !sameList(b.reads, reads)) { b = build(head, reads); built.set(svc, b); }
    for (let i = 0; i < head.ports.length; i++) {
      const sp = head.ports[i];
      const owner = owners.get(sp.key);
      if (owner !== undefined) {
        skipped.push({ kind: 'Service', namespace: head.ns, name: head.name, reason: `port ${portText(sp.name, sp.port, sp.rawProto)}: ${sp.key} belongs to Service ${owner} already` });
        continue;
      }
      owners.set(sp.key, head.id);
      if (!vips.has(head.vip)) {
        vips.set(head.vip, sp.key);
        if (head.vipNum < vipLo) vipLo = head.vipNum;
        if (head.vipNum > vipHi) vipHi = head.vipNum;
      }
      const line = b.over[i];
      if (line) skipped.push(line);
      out.push(b.services[i]);
      outOwner.push(head);
      outBuilt.push(b);
    }
  }

  // Backends that are VIPs: packets to them would be load balanced again (validateServices refuses them).
  for (let i = 0; i < out.length; i++) {
    // Pod addresses and service addresses are usually apart: no backend of this service in the VIPs' range.
    if (outBuilt[i].hi < vipLo || outBuilt[i].lo > vipHi) continue;
    const s = out[i];
    let hit = false;
    for (const be of s.backends) if (vips.has(be.ip)) { hit = true; break; }
    if (!hit) continue;
    const head = outOwner[i];
    const key = `${s.vip}:${s.port}/${s.proto}`;
    // A new object: the built one is shared with later calls.
    out[i] = {
      ...s,
      backends: s.backends.filter((be) => {
        const vipOf = vips.get(be.ip);
        if (vipOf === undefined) return true;
        skipped.push({ kind: 'Service', namespace: head.ns, name: head.name, reason: `${key}: backend ${be.ip}:${be.port} is a service address (VIP of ${vipOf}), left out` });
        return false;
      }),
    };
  }
  return { services: out, skipped };
}

/** One log line for a skipped object: "skip Service ns/name: reason". */
export function describeSkipped(s: Skipped): string {
  return `skip ${s.kind} ${s.namespace}/${s.name}: ${s.reason}`;
}
