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
/** One address of a usable endpoint. */
interface SliceAddr {
  ip: number;
  ipText: string;
  /** 1 ready, 0 drained. */
  weight: number;
}
/** A slice read once, whatever number of service ports look into it. */
interface ReadSlice {
  ports: SlicePort[];
  addrs: SliceAddr[];
}
/** A backend before duplicates go. */
interface Cand {
  ip: number;
  ipText: string;
  port: number;
  weight: number;
}
/** By address, then port, then ready before drained. */
const byAddr = (a: Cand, b: Cand): number => a.ip - b.ip || a.port - b.port || b.weight - a.weight;
/** A slice before it is read (read only when a service needs it, so slices of skipped services cost nothing). */
interface SliceRef {
  name: string;
  slice: V1EndpointSlice;
  read?: ReadSlice;
}

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
/** The canonical dotted quad of a host's IPv4 address, or the reason it is not one. */
function hostIp(what: string, text: unknown): { ip: number; ipText: string } | { reason: string } {
  try {
    const ip = checkIp(what, text);
    return { ip, ipText: formatIpv4(ip) };
  } catch (e) {
    return { reason: (e as Error).message };
  }
}
/** An IPv6 address (has a colon); such a service or endpoint is out of scope, not malformed. */
const looksIpv6 = (s: unknown): boolean => typeof s === 'string' && s.includes(':');

/** Reads a slice's usable ports and addresses, adding a Skipped entry for each bad piece. */
function readSlice(ns: string, ref: SliceRef, skipped: Skipped[]): ReadSlice {
  const skip = (reason: string) => skipped.push({ kind: 'EndpointSlice', namespace: ns, name: ref.name, reason });
  const ports: SlicePort[] = [];
  const rawPorts: unknown = ref.slice.ports;
  if (Array.isArray(rawPorts)) {
    for (const p of rawPorts as unknown[]) {
      if (!isObject(p)) { skip('a ports entry is not an object'); continue; }
      const name = str(p.name);
      const proto = protoOfApi(p.protocol);
      if (proto === undefined) { skip(`port ${portText(name, p.port, p.protocol)}: unknown protocol '${String(p.protocol)}'`); continue; }
      // An SCTP port can only match an SCTP service port, which is skipped (and said) already.
      if (proto === 'unsupported') continue;
      if (!validPort(p.port)) { skip(`port ${portText(name, p.port, p.protocol)}: port out of range (1-65535)`); continue; }
      ports.push({ name, proto, port: p.port });
    }
  }
  const addrs: SliceAddr[] = [];
  const rawEps: unknown = ref.slice.endpoints;
  if (Array.isArray(rawEps)) {
    for (const ep of rawEps as unknown[]) {
      if (!isObject(ep)) { skip('an endpoint is not an object'); continue; }
      const c = isObject(ep.conditions) ? ep.conditions : {};
      const ready = c.ready === undefined || c.ready === null || c.ready === true;
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
        addrs.push({ ip, ipText: formatIpv4(ip), weight });
      }
    }
  }
  // By address, ready first, each address once: a service port with one slice takes this as it is.
  if (addrs.length > 1) {
    addrs.sort((a, b) => a.ip - b.ip || b.weight - a.weight);
    let n = 1;
    for (let i = 1; i < addrs.length; i++) if (addrs[i].ip !== addrs[n - 1].ip) addrs[n++] = addrs[i];
    addrs.length = n;
  }
  return { ports, addrs };
}

/**
 * Every ClusterIP service port with its backends, from the objects as the
 * API serves them (plain JSON or client-node's classes: only the fields
 * are read). Follows the rules in this module's comment. Never throws:
 * whatever cannot be taken is in `skipped`, one entry per piece. Every
 * result is accepted by ServiceTable.apply (src/lb/model.ts validateServices).
 * Needs no kernel.
 */
export function desiredState(services: Iterable<V1Service>, slices: Iterable<V1EndpointSlice>): DesiredState {
  const skipped: Skipped[] = [];

  // Slices by "namespace/service", IPv4 only.
  const byService = new Map<string, SliceRef[]>();
  for (const sl of slices) {
    if (!isObject(sl) || sl.addressType !== 'IPv4' || !isObject(sl.metadata)) continue;
    const labels = sl.metadata.labels;
    const svc = isObject(labels) ? str(labels[SERVICE_NAME_LABEL]) : '';
    if (!svc) continue;
    const key = `${str(sl.metadata.namespace)}/${svc}`;
    const ref: SliceRef = { name: str(sl.metadata.name), slice: sl };
    const list = byService.get(key);
    if (list) list.push(ref);
    else byService.set(key, [ref]);
  }

  // Services in namespace/name order.
  const svcs: Array<{ ns: string; name: string; svc: V1Service }> = [];
  for (const svc of services) {
    if (!isObject(svc)) { skipped.push({ kind: 'Service', namespace: '', name: '', reason: 'not an object' }); continue; }
    const md = isObject(svc.metadata) ? svc.metadata : {};
    svcs.push({ ns: str(md.namespace), name: str(md.name), svc });
  }
  svcs.sort((a, b) => cmp(a.ns, b.ns) || cmp(a.name, b.name));

  const out: Service[] = [];
  /** Who holds each VIP:port/proto, for the duplicates. */
  const owners = new Map<string, string>();
  /** VIP (canonical text) -> the first service key with it, for backends that are VIPs. */
  const vips = new Map<string, string>();

  for (const { ns, name, svc } of svcs) {
    const skip = (reason: string) => skipped.push({ kind: 'Service', namespace: ns, name, reason });
    if (!name) { skip('no metadata.name'); continue; }
    const spec = svc.spec;
    if (!isObject(spec)) { skip('no spec'); continue; }
    if (spec.type === 'ExternalName') { skip('type ExternalName has no ClusterIP'); continue; }
    const ips: unknown[] = Array.isArray(spec.clusterIPs) && spec.clusterIPs.length ? spec.clusterIPs : [spec.clusterIP];
    if (ips[0] === 'None') { skip('headless (clusterIP None)'); continue; }
    if (ips[0] === undefined || ips[0] === null || ips[0] === '') { skip('no clusterIP'); continue; }
    const v4 = ips.find((ip) => !looksIpv6(ip));
    if (v4 === undefined) { skip(`clusterIP ${String(ips[0])} is IPv6, only IPv4 is supported`); continue; }
    const vip = hostIp('clusterIP', v4);
    if ('reason' in vip) { skip(vip.reason); continue; }
    const rawPorts: unknown = spec.ports;
    if (!Array.isArray(rawPorts) || rawPorts.length === 0) { skip('no ports'); continue; }

    // The service's ports, checked, by port then protocol.
    const ports: Array<{ name: string; proto: ServiceProto; port: number; text: string }> = [];
    for (const p of rawPorts as unknown[]) {
      if (!isObject(p)) { skip('a ports entry is not an object'); continue; }
      const pname = str(p.name);
      const text = portText(pname, p.port, p.protocol);
      const proto = protoOfApi(p.protocol);
      if (proto === undefined) { skip(`port ${text}: unknown protocol '${String(p.protocol)}'`); continue; }
      if (proto === 'unsupported') { skip(`port ${text}: protocol ${String(p.protocol)} is not supported (TCP and UDP are)`); continue; }
      if (!validPort(p.port)) { skip(`port ${text}: port out of range (1-65535)`); continue; }
      ports.push({ name: pname, proto, port: p.port, text });
    }
    ports.sort((a, b) => a.port - b.port || cmp(a.proto, b.proto));

    const refs = byService.get(`${ns}/${name}`) ?? [];
    if (refs.length > 1) refs.sort((a, b) => cmp(a.name, b.name));

    for (const sp of ports) {
      const key = `${vip.ipText}:${sp.port}/${sp.proto}`;
      const owner = owners.get(key);
      if (owner) { skip(`port ${sp.text}: ${key} belongs to Service ${owner} already`); continue; }
      owners.set(key, `${ns}/${name}`);
      if (!vips.has(vip.ipText)) vips.set(vip.ipText, key);

      // The matching port of each slice; a slice without one gives nothing.
      const parts: Array<{ addrs: SliceAddr[]; port: number }> = [];
      for (const ref of refs) {
        const rs = (ref.read ??= readSlice(ns, ref, skipped));
        for (const q of rs.ports) if (q.name === sp.name && q.proto === sp.proto) { if (rs.addrs.length) parts.push({ addrs: rs.addrs, port: q.port }); break; }
      }
      let backends: Backend[];
      let ready = 0;
      if (parts.length === 1) {
        // One slice (the common case): its addresses are sorted and unique already.
        const { addrs, port } = parts[0];
        backends = new Array(addrs.length);
        for (let i = 0; i < addrs.length; i++) {
          const a = addrs[i];
          backends[i] = { ip: a.ipText, port, weight: a.weight };
          if (a.weight > 0) ready++;
        }
      } else {
        // Several: sorted by address then port, ready before drained; the first of each ip:port wins.
        const cand: Cand[] = [];
        for (const { addrs, port } of parts) for (const a of addrs) cand.push({ ip: a.ip, ipText: a.ipText, port, weight: a.weight });
        cand.sort(byAddr);
        backends = [];
        for (let i = 0; i < cand.length; i++) {
          const c = cand[i];
          if (i > 0 && c.ip === cand[i - 1].ip && c.port === cand[i - 1].port) continue;
          backends.push({ ip: c.ipText, port: c.port, weight: c.weight });
          if (c.weight > 0) ready++;
        }
      }
      if (backends.length > LB_MAX_BACKENDS) {
        const n = backends.length;
        // Ready ones first: the drained ones fill what is left, by address.
        let room = LB_MAX_BACKENDS - Math.min(ready, LB_MAX_BACKENDS);
        let keepReady = LB_MAX_BACKENDS - room;
        backends = backends.filter((b) => (b.weight! > 0 ? keepReady-- > 0 : room-- > 0));
        skip(`port ${sp.text}: ${n} backends, keeping ${LB_MAX_BACKENDS} (the most the load balancer holds; ready ones first, by address)`);
      }
      out.push({ vip: vip.ipText, port: sp.port, proto: sp.proto, backends });
    }
  }

  // Backends that are VIPs: packets to them would be load balanced again (validateServices refuses them).
  for (const s of out) {
    if (!s.backends.some((b) => vips.has(b.ip))) continue;
    const key = `${s.vip}:${s.port}/${s.proto}`;
    const who = owners.get(key)!;
    const slash = who.indexOf('/');
    s.backends = s.backends.filter((b) => {
      const vipOf = vips.get(b.ip);
      if (vipOf === undefined) return true;
      skipped.push({ kind: 'Service', namespace: who.slice(0, slash), name: who.slice(slash + 1), reason: `${key}: backend ${b.ip}:${b.port} is a service address (VIP of ${vipOf}), left out` });
      return false;
    });
  }
  return { services: out, skipped };
}

/** One log line for a skipped object: "skip Service ns/name: reason". */
export function describeSkipped(s: Skipped): string {
  return `skip ${s.kind} ${s.namespace}/${s.name}: ${s.reason}`;
}
