/**
 * The load balancer's service model: a service is VIP:PORT/PROTO with a list
 * of backends, each IP:PORT with a weight. Parsing and formatting of the
 * text form every command line uses,
 *
 *   VIP:PORT/PROTO=IP:PORT[*WEIGHT],IP:PORT[*WEIGHT],...
 *   10.96.0.10:80/tcp=10.244.1.5:8080,10.244.2.7:8080*3
 *
 * and validation: every address one host's, ports 1-65535, tcp or udp,
 * weights 0-65535 (default 1; 0 = drained: the backend keeps its
 * established flows but takes no new ones), at most LB_MAX_BACKENDS
 * backends per service, none listed twice, no service listed twice, no
 * backend that is a VIP. An empty backend list (`VIP:PORT/PROTO=`) is a
 * service that takes no new flows. Every error is one line and is thrown
 * before anything is written.
 */
import { formatIpv4 } from '../codec.js';
import { BpfError, Errno } from '../errors.js';
import { LB_MAX_BACKENDS } from './layout.js';

/** Protocols a service can have. */
export type ServiceProto = 'tcp' | 'udp';
const PROTO_NUM: Record<ServiceProto, number> = { tcp: 6, udp: 17 };

/** The largest weight a backend can have. */
export const WEIGHT_MAX = 65535;
/** The weight of a backend given without one. */
export const DEFAULT_WEIGHT = 1;

/** A service's address: what clients connect to. */
export interface ServiceAddr {
  /** Virtual IP, dotted quad. */
  vip: string;
  /** 1-65535. */
  port: number;
  proto: ServiceProto;
}
/** One backend of a service. */
export interface Backend {
  ip: string;
  /** 1-65535. */
  port: number;
  /** 0-65535, DEFAULT_WEIGHT (1) when left out; 0 = drained (no new flows). */
  weight?: number;
}
/** A service and its backends. */
export interface Service extends ServiceAddr {
  backends: Backend[];
}

/** A backend checked and in kernel form (addresses as parseIpv4 gives them). */
export interface ParsedBackend {
  /** "ip:port", canonical: the backend's identity within its service and its Maglev key. */
  key: string;
  /** The address, canonical dotted quad. */
  ipText: string;
  ip: number;
  port: number;
  weight: number;
}
/** A service checked and in kernel form. */
export interface ParsedService {
  /** "vip:port/proto", canonical: the service's identity. */
  key: string;
  vip: number;
  /** The VIP, canonical dotted quad. */
  vipText: string;
  port: number;
  /** 6 or 17. */
  proto: number;
  protoText: ServiceProto;
  /** In the order given. */
  backends: ParsedBackend[];
  /** The service as given. */
  input: Service;
}

/**
 * Checks an address of one host and returns it as a number. Refuses
 * 0.0.0.0/8 ("this network"), multicast (224.0.0.0/4), the reserved
 * 240.0.0.0/4 and the broadcast 255.255.255.255. Throws a TypeError or
 * RangeError starting with `what`.
 */
export function checkIp(what: string, ip: unknown): number {
  if (typeof ip !== 'string') throw new TypeError(`${what}: bad IPv4 address '${String(ip)}'`);
  const n = quickIpv4(ip);
  if (n < 0) throw new TypeError(`${what}: bad IPv4 address '${ip}'`);
  const first = n >>> 24;
  const kind = n === 0xffffffff ? 'the broadcast address'
    : first === 0 ? 'in 0.0.0.0/8 ("this network")'
      : first >= 224 && first < 240 ? 'a multicast address'
        : first >= 240 ? 'in the reserved 240.0.0.0/4' : undefined;
  if (kind) throw new RangeError(`${what}: ${ip} is ${kind}, not the address of one host`);
  return n;
}
/** A dotted quad (1-3 digits per octet, each 0-255, as parseIpv4 takes) as a number, or -1. No regex, no allocation: it runs for every backend of a snapshot. */
function quickIpv4(s: string): number {
  let v = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (++digits > 3) return -1;
      octet = octet * 10 + (c - 48);
    } else if (c === 46) {
      if (digits === 0 || octet > 255 || ++dots > 3) return -1;
      v = v * 256 + octet;
      octet = 0;
      digits = 0;
    } else return -1;
  }
  if (dots !== 3 || digits === 0 || octet > 255) return -1;
  return v * 256 + octet;
}

/** Checks a port (1-65535). Throws a RangeError starting with `what`. */
export function checkPort(what: string, port: unknown): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`${what}: port ${String(port)} is out of range (1-65535)`);
  }
  return port;
}
/** Checks a protocol name ('tcp', 'udp', any case) and returns its number. Throws a TypeError starting with `what`. */
export function checkProto(what: string, proto: unknown): number {
  const n = typeof proto === 'string' ? PROTO_NUM[proto.toLowerCase() as ServiceProto] : undefined;
  if (n === undefined) throw new TypeError(`${what}: unknown protocol '${String(proto)}' (use tcp or udp)`);
  return n;
}
/** Checks a weight (0-65535; undefined is DEFAULT_WEIGHT). Throws a RangeError starting with `what`. */
export function checkWeight(what: string, weight: unknown): number {
  if (weight === undefined) return DEFAULT_WEIGHT;
  if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > WEIGHT_MAX) {
    throw new RangeError(`${what}: weight ${String(weight)} is out of range (0-${WEIGHT_MAX})`);
  }
  return weight;
}
/** The name of protocol number 6 or 17. Throws a TypeError for any other. */
export function protoOf(n: number): ServiceProto {
  if (n === 6) return 'tcp';
  if (n === 17) return 'udp';
  throw new TypeError(`protocol ${n} is neither tcp nor udp`);
}

/** "10.96.0.10:80/tcp" */
export function formatServiceAddr(s: ServiceAddr): string {
  return `${s.vip}:${s.port}/${s.proto}`;
}
/** "10.244.1.5:8080", with "*3" for a weight other than 1. */
export function formatBackend(b: Backend): string {
  const w = b.weight ?? DEFAULT_WEIGHT;
  return w === DEFAULT_WEIGHT ? `${b.ip}:${b.port}` : `${b.ip}:${b.port}*${w}`;
}
/** The text form parseService reads: "10.96.0.10:80/tcp=10.244.1.5:8080,10.244.2.7:8080*3". */
export function formatService(s: Service): string {
  return `${formatServiceAddr(s)}=${s.backends.map(formatBackend).join(',')}`;
}
/** For people: "10.96.0.10:80/tcp → 10.244.1.5:8080, 10.244.2.7:8080*3" ("→ (no backends)" for none). */
export function describeService(s: Service): string {
  return `${formatServiceAddr(s)} → ${s.backends.length ? s.backends.map(formatBackend).join(', ') : '(no backends)'}`;
}

function parsePortText(what: string, p: string): number {
  if (!/^\d+$/.test(p)) throw new RangeError(`${what}: port '${p}' is not a number`);
  return checkPort(what, Number(p));
}

/** Parses "VIP:PORT/PROTO" ("10.96.0.10:80/tcp"). Throws a TypeError/RangeError saying what is wrong. */
export function parseServiceAddr(text: string): ServiceAddr {
  const m = /^([^:/=\s]+):([^/=\s]+)\/([^=\s]+)$/.exec(String(text).trim());
  if (!m) throw new TypeError(`bad service '${text}': expected VIP:PORT/PROTO, e.g. 10.96.0.10:80/tcp`);
  const vip = formatIpv4(checkIp('service', m[1]));
  checkProto('service', m[3]);
  return { vip, port: parsePortText('service', m[2]), proto: m[3].toLowerCase() as ServiceProto };
}

/** Parses "IP:PORT" or "IP:PORT*WEIGHT" ("10.244.2.7:8080*3"). Throws a TypeError/RangeError saying what is wrong. */
export function parseBackend(text: string): Required<Backend> {
  const m = /^([^:\s*]+):([^*\s]+)(?:\*(\S*))?$/.exec(String(text).trim());
  if (!m) throw new TypeError(`bad backend '${text}': expected IP:PORT or IP:PORT*WEIGHT, e.g. 10.244.1.5:8080*2`);
  const ip = formatIpv4(checkIp('backend', m[1]));
  const port = parsePortText('backend', m[2]);
  let weight = DEFAULT_WEIGHT;
  if (m[3] !== undefined) {
    if (!/^\d+$/.test(m[3])) throw new RangeError(`backend ${m[1]}:${m[2]}: weight '${m[3]}' is not a number`);
    weight = checkWeight(`backend ${m[1]}:${m[2]}`, Number(m[3]));
  }
  return { ip, port, weight };
}

/**
 * Parses "VIP:PORT/PROTO=IP:PORT[*WEIGHT],..." into a service (empty after
 * '=' for a service with no backends), and checks it as checkService does.
 * Throws a TypeError/RangeError saying what is wrong, in one line.
 */
export function parseService(text: string): Required<Service> {
  const t = String(text);
  const eq = t.indexOf('=');
  if (eq < 0) throw new TypeError(`bad service '${t}': expected VIP:PORT/PROTO=IP:PORT[*WEIGHT],..., e.g. 10.96.0.10:80/tcp=10.244.1.5:8080,10.244.1.6:8080*2`);
  const addr = parseServiceAddr(t.slice(0, eq));
  const rest = t.slice(eq + 1).trim();
  const backends = rest === '' ? [] : rest.split(',').map(parseBackend);
  return canonicalService(checkService({ ...addr, backends }));
}

/**
 * Checks one service: address, port, protocol, every backend (address,
 * port, weight), at most LB_MAX_BACKENDS of them, none listed twice.
 * Returns it in kernel form. Throws a TypeError or RangeError in one line.
 */
export function checkService(s: Service): ParsedService {
  if (!s || typeof s !== 'object') throw new TypeError('service: not a service');
  const vip = checkIp('service', s.vip);
  const port = checkPort('service', s.port);
  const proto = checkProto('service', s.proto);
  const vipText = formatIpv4(vip);
  const protoText = protoOf(proto);
  const key = `${vipText}:${port}/${protoText}`;
  const list = s.backends;
  if (!Array.isArray(list)) throw new TypeError(`service ${key}: no backend list`);
  if (list.length > LB_MAX_BACKENDS) throw new RangeError(`service ${key}: ${list.length} backends, at most ${LB_MAX_BACKENDS}`);
  const seen = new Set<number>();
  const backends = new Array<ParsedBackend>(list.length);
  for (let j = 0; j < list.length; j++) {
    const b = list[j];
    if (!b || typeof b !== 'object') throw new TypeError(`service ${key}: a backend is not a backend`);
    // The messages are built only on failure: this runs for every backend of a big snapshot.
    const ip = checkIp(`service ${key}: backend`, b.ip);
    const ipText = formatIpv4(ip);
    const bport = b.port;
    if (typeof bport !== 'number' || !Number.isInteger(bport) || bport < 1 || bport > 65535) checkPort(`service ${key}: backend ${ipText}`, bport);
    const w = b.weight;
    const weight = w === undefined ? DEFAULT_WEIGHT : typeof w === 'number' && Number.isInteger(w) && w >= 0 && w <= WEIGHT_MAX ? w : checkWeight(`service ${key}: backend ${ipText}:${bport}`, w);
    const id = ip * 65536 + bport;
    if (seen.has(id)) throw new RangeError(`service ${key}: backend ${ipText}:${bport} is listed twice`);
    seen.add(id);
    backends[j] = { key: `${ipText}:${bport}`, ipText, ip, port: bport, weight };
  }
  return { key, vip, vipText, port, proto, protoText, backends, input: s };
}

/** A checked service in canonical form: dotted quads re-formatted, protocol in lower case, every weight filled in. */
export function canonicalService(p: ParsedService): Required<Service> {
  return { vip: p.vipText, port: p.port, proto: p.protoText, backends: p.backends.map((b) => ({ ip: b.ipText, port: b.port, weight: b.weight })) };
}

/**
 * Checks a list of services (what apply() or a loader's --service list
 * takes) without touching any map: each one as checkService does, no
 * service listed twice, no backend whose address is a VIP of the list
 * (packets to it would be load balanced again). Returns them in kernel
 * form. Throws a TypeError/RangeError for a malformed service, a BpfError
 * (EINVAL) naming `op` for a conflict.
 */
export function validateServices(list: readonly Service[], op = `check ${list.length} services`): ParsedService[] {
  const parsed = list.map(checkService);
  const byKey = new Set<string>();
  const vips = new Map<number, string>();
  for (const p of parsed) {
    if (byKey.has(p.key)) throw new BpfError(op, Errno.EINVAL, `service ${p.key} is listed twice`);
    byKey.add(p.key);
    if (!vips.has(p.vip)) vips.set(p.vip, p.key);
  }
  for (const p of parsed) {
    for (const b of p.backends) {
      const owner = vips.get(b.ip);
      if (owner) throw new BpfError(op, Errno.EINVAL, `backend ${b.key} of ${p.key} is a service address (VIP of ${owner}); a backend must be a real host`);
    }
  }
  return parsed;
}

/** "vip:port/proto" of a service address, canonical when the address is (as table.list() gives it). */
export function serviceKeyText(s: ServiceAddr): string {
  return `${s.vip}:${s.port}/${s.proto}`;
}
