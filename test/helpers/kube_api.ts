/**
 * A stand-in for the Kubernetes API server, for tests and the bench: no API
 * server can run on these machines (none is packaged), so the real client
 * (@kubernetes/client-node) talks to this instead. An HTTP server on
 * 127.0.0.1 that speaks the API's list and watch protocol for v1 Services
 * and discovery.k8s.io/v1 EndpointSlices (cluster-wide and namespaced paths):
 *
 * - list: `GET /api/v1/services` → {kind: ServiceList, apiVersion: v1,
 *   metadata: {resourceVersion}, items} with apiVersion/kind on every item,
 *   as the API serves them; a list asking for a resourceVersion older than
 *   the compacted history gets HTTP 410 with a Status object.
 * - watch: `?watch=true&resourceVersion=N[&allowWatchBookmarks=true]` → a
 *   chunked stream of {"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR",
 *   "object":...} lines: the events after N from the history, then live
 *   ones. An N older than the history gets an ERROR event holding a Status
 *   with code 410 (Gone), then the stream ends, as the API does. Without N
 *   every object comes as ADDED first.
 * - resourceVersions: one counter for all objects (as etcd's revision),
 *   increasing with every write.
 *
 * For tests: create/update/remove objects (`quiet` writes change the store
 * without any event, as if the history holding it were compacted away),
 * bookmark(), expireHistory() (410 for every watch and list from before),
 * dropWatches() (connections closed: the client re-watches), stop() and
 * start() (killed and back on the same port, with the same store).
 *
 * In a network namespace (a loader entered with nsenter --net cannot reach
 * this process's 127.0.0.1): `netns` starts a forwarder process in it that
 * listens on its 127.0.0.1 and passes each connection to this server
 * through a Unix socket (path sockets are shared between network
 * namespaces). stop() kills the forwarder too, so the client sees
 * ECONNREFUSED as it would from a dead API server.
 *
 * writeKubeconfig() writes a kubeconfig for the client (plain http:// with
 * `insecure-skip-tls-verify: true`, without which client-node 1.4 refuses
 * plain HTTP); close() removes it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';

/** The two resources the stand-in serves. */
export type Resource = 'services' | 'endpointslices';
type KubeObject = V1Service | V1EndpointSlice;
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface ResourceInfo { apiVersion: string; kind: string; listKind: string; prefix: string }
const RESOURCES: Record<Resource, ResourceInfo> = {
  services: { apiVersion: 'v1', kind: 'Service', listKind: 'ServiceList', prefix: '/api/v1' },
  endpointslices: { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', listKind: 'EndpointSliceList', prefix: '/apis/discovery.k8s.io/v1' },
};

interface HistoryEvent { rv: number; resource: Resource; type: EventType; object: KubeObject }
interface Watcher { resource: Resource; namespace?: string; res: ServerResponse; bookmarks: boolean }

/** Options of KubeApi.start(). */
export interface KubeApiOptions {
  /** Serve inside this network namespace (/run/netns/NAME) through a forwarder; default: this process's. */
  netns?: string;
  /** Milliseconds between bookmarks on watches that allow them; 0: only bookmark(). Default 0. */
  bookmarkMs?: number;
}

/** Counts of what the stand-in served, for tests. */
export interface KubeApiStats { lists: Record<Resource, number>; watches: Record<Resource, number>; gone: number }

const FORWARDER = `
const net = require('node:net');
const [sock, port] = process.argv.slice(1);
const srv = net.createServer((c) => {
  const u = net.connect(sock);
  c.pipe(u); u.pipe(c);
  const end = () => { c.destroy(); u.destroy(); };
  c.on('error', end); u.on('error', end); c.on('close', end); u.on('close', end);
});
srv.listen(Number(port), '127.0.0.1', () => process.stdout.write(srv.address().port + '\\n'));
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();
`;

function keyOf(o: KubeObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

/** The Kubernetes API stand-in (see the file's header). */
export class KubeApi {
  private readonly store: Record<Resource, Map<string, KubeObject>> = { services: new Map(), endpointslices: new Map() };
  private history: HistoryEvent[] = [];
  /** Each stored object serialized once, when written (as the API server keeps them encoded). */
  private readonly json = new WeakMap<KubeObject, string>();
  private rv = 1;
  /** Watches and lists from a resourceVersion below this get 410. */
  private compacted = 0;
  private readonly watchers = new Set<Watcher>();
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private forwarder?: ChildProcess;
  private bookmarkTimer?: NodeJS.Timeout;
  private readonly dir = mkdtempSync(join(tmpdir(), 'lbts-kubeapi-'));
  private readonly unixPath = join(this.dir, 'api.sock');
  private tcpPort = 0;
  private nsPort = 0;
  readonly stats: KubeApiStats = { lists: { services: 0, endpointslices: 0 }, watches: { services: 0, endpointslices: 0 }, gone: 0 };

  private constructor(private readonly opts: KubeApiOptions) {}

  /** Starts a stand-in (empty store). Close it with close(). */
  static async start(opts: KubeApiOptions = {}): Promise<KubeApi> {
    const api = new KubeApi(opts);
    await api.start();
    return api;
  }

  /** http://127.0.0.1:PORT as the client reaches it (in the netns when one was given). */
  get url(): string {
    return `http://127.0.0.1:${this.opts.netns ? this.nsPort : this.tcpPort}`;
  }

  /** The current resourceVersion. */
  get resourceVersion(): number {
    return this.rv;
  }

  /** Starts serving (again, on the same port and with the same store after stop()). */
  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (this.opts.netns) server.listen(this.unixPath, () => resolve());
      else server.listen(this.tcpPort, '127.0.0.1', () => resolve());
    });
    if (!this.opts.netns) this.tcpPort = (server.address() as { port: number }).port;
    else await this.startForwarder();
    if (this.opts.bookmarkMs) this.bookmarkTimer = setInterval(() => this.bookmark(), this.opts.bookmarkMs);
  }

  private async startForwarder(): Promise<void> {
    const child = spawn('nsenter', [`--net=/run/netns/${this.opts.netns}`, process.execPath, '-e', FORWARDER, this.unixPath, String(this.nsPort)], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.forwarder = child;
    this.nsPort = await new Promise<number>((resolve, reject) => {
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const m = /^(\d+)\n/.exec(buf);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`kube api forwarder in ${this.opts.netns} exited (${code})`)));
    });
  }

  /** Kills the server (and the forwarder): every connection reset, new ones refused. The store stays. */
  async stop(): Promise<void> {
    clearInterval(this.bookmarkTimer);
    this.bookmarkTimer = undefined;
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
    if (this.forwarder) {
      const f = this.forwarder;
      this.forwarder = undefined;
      if (f.exitCode === null && f.signalCode === null) {
        const gone = new Promise((r) => f.once('exit', r));
        f.kill('SIGKILL');
        await gone;
      }
    }
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }

  /** Stops and removes the temporary files (the kubeconfig too). Safe twice. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Writes a kubeconfig pointing at the stand-in (removed by close()); returns its path. */
  writeKubeconfig(): string {
    const path = join(this.dir, 'kubeconfig');
    writeFileSync(path, [
      'apiVersion: v1', 'kind: Config', 'current-context: standin',
      'clusters:', '- name: standin', '  cluster:', `    server: ${this.url}`, '    insecure-skip-tls-verify: true',
      'users:', '- name: standin', '  user:', '    token: standin',
      'contexts:', '- name: standin', '  context:', '    cluster: standin', '    user: standin',
      '',
    ].join('\n'));
    return path;
  }

  // ---- the store

  private resourceOf(o: KubeObject): Resource {
    return (o as V1EndpointSlice).addressType !== undefined || o.kind === 'EndpointSlice' ? 'endpointslices' : 'services';
  }

  /**
   * Creates or replaces an object (Service or EndpointSlice, told apart by
   * kind or addressType) and sends ADDED/MODIFIED to the watches. `quiet`:
   * no event at all (the change is seen only by a list).
   */
  put(obj: KubeObject, { quiet = false }: { quiet?: boolean } = {}): number {
    const resource = this.resourceOf(obj);
    const info = RESOURCES[resource];
    const exists = this.store[resource].has(keyOf(obj));
    const rv = ++this.rv;
    const stored = { ...obj, apiVersion: info.apiVersion, kind: info.kind, metadata: { ...obj.metadata, resourceVersion: String(rv), uid: obj.metadata?.uid ?? `uid-${resource}-${keyOf(obj)}` } } as KubeObject;
    this.store[resource].set(keyOf(obj), stored);
    this.jsonOf(stored);
    if (!quiet) this.publish({ rv, resource, type: exists ? 'MODIFIED' : 'ADDED', object: stored });
    return rv;
  }

  /** put() for many objects, one event each. */
  putAll(objs: Iterable<KubeObject>, opts: { quiet?: boolean } = {}): void {
    for (const o of objs) this.put(o, opts);
  }

  /** Deletes an object by its resource, namespace and name; DELETED to the watches. False when absent. */
  remove(resource: Resource, namespace: string, name: string, { quiet = false }: { quiet?: boolean } = {}): boolean {
    const old = this.store[resource].get(`${namespace}/${name}`);
    if (!old) return false;
    this.store[resource].delete(`${namespace}/${name}`);
    const rv = ++this.rv;
    if (!quiet) this.publish({ rv, resource, type: 'DELETED', object: { ...old, metadata: { ...old.metadata, resourceVersion: String(rv) } } as KubeObject });
    return true;
  }

  /** An object as stored, or undefined. */
  get(resource: Resource, namespace: string, name: string): KubeObject | undefined {
    return this.store[resource].get(`${namespace}/${name}`);
  }

  private publish(ev: HistoryEvent): void {
    this.history.push(ev);
    const line = this.eventLine(ev.type, ev.object);
    for (const w of this.watchers) {
      if (w.resource === ev.resource && (!w.namespace || w.namespace === ev.object.metadata?.namespace)) w.res.write(line);
    }
  }

  /** Sends a BOOKMARK (the current resourceVersion) on every watch that allows them. */
  bookmark(): void {
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      const info = RESOURCES[w.resource];
      w.res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: info.kind, apiVersion: info.apiVersion, metadata: { resourceVersion: String(this.rv) } } })}\n`);
    }
  }

  /**
   * Compacts the history: every resourceVersion up to now is too old. Open
   * watches get an ERROR event with a 410 Status and end; a client
   * re-watching from its last resourceVersion gets 410 and must relist.
   */
  expireHistory(): void {
    this.rv++;
    this.compacted = this.rv;
    this.history = [];
    for (const w of this.watchers) {
      this.stats.gone++;
      w.res.end(`${JSON.stringify({ type: 'ERROR', object: goneStatus(this.rv) })}\n`);
    }
    this.watchers.clear();
  }

  /** Ends every open watch (the client re-watches from its last resourceVersion). `reset`: destroy the sockets instead. */
  dropWatches({ reset = false }: { reset?: boolean } = {}): number {
    const n = this.watchers.size;
    for (const w of this.watchers) {
      if (reset) w.res.destroy(); else w.res.end();
    }
    this.watchers.clear();
    return n;
  }

  /** Open watches (of one resource, or all). */
  watchCount(resource?: Resource): number {
    let n = 0;
    for (const w of this.watchers) if (!resource || w.resource === resource) n++;
    return n;
  }

  // ---- HTTP

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://standin');
    const route = this.route(url.pathname);
    if (req.method !== 'GET' || !route) {
      sendJson(res, 404, status(404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname})`));
      return;
    }
    const q = url.searchParams;
    const rvParam = q.get('resourceVersion');
    const fromRv = rvParam && rvParam !== '0' ? Number(rvParam) : undefined;
    if (q.get('watch') === 'true' || q.get('watch') === '1') this.watch(res, route.resource, route.namespace, fromRv, q.get('allowWatchBookmarks') === 'true');
    else this.list(res, route.resource, route.namespace, fromRv);
  }

  private route(path: string): { resource: Resource; namespace?: string } | undefined {
    for (const [resource, info] of Object.entries(RESOURCES) as Array<[Resource, ResourceInfo]>) {
      if (path === `${info.prefix}/${resource}`) return { resource };
      const m = new RegExp(`^${info.prefix.replace(/\./g, '\\.')}/namespaces/([^/]+)/${resource}$`).exec(path);
      if (m) return { resource, namespace: decodeURIComponent(m[1]) };
    }
    return undefined;
  }

  private items(resource: Resource, namespace?: string): KubeObject[] {
    const list: Array<[string, KubeObject]> = [];
    for (const [k, o] of this.store[resource]) if (!namespace || o.metadata?.namespace === namespace) list.push([k, o]);
    return list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((x) => x[1]);
  }

  private jsonOf(o: KubeObject): string {
    let j = this.json.get(o);
    if (j === undefined) {
      j = JSON.stringify(o);
      this.json.set(o, j);
    }
    return j;
  }

  private eventLine(type: string, o: KubeObject): string {
    return `{"type":"${type}","object":${this.jsonOf(o)}}\n`;
  }

  private list(res: ServerResponse, resource: Resource, namespace: string | undefined, fromRv: number | undefined): void {
    this.stats.lists[resource]++;
    if (fromRv !== undefined && fromRv < this.compacted) {
      this.stats.gone++;
      sendJson(res, 410, goneStatus(fromRv));
      return;
    }
    const info = RESOURCES[resource];
    const head = JSON.stringify({ kind: info.listKind, apiVersion: info.apiVersion, metadata: { resourceVersion: String(this.rv) }, items: [] });
    const text = `${head.slice(0, -3)}[${this.items(resource, namespace).map((o) => this.jsonOf(o)).join(',')}]}`;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private watch(res: ServerResponse, resource: Resource, namespace: string | undefined, fromRv: number | undefined, bookmarks: boolean): void {
    this.stats.watches[resource]++;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    if (fromRv !== undefined && fromRv < this.compacted) {
      this.stats.gone++;
      res.end(`${JSON.stringify({ type: 'ERROR', object: goneStatus(fromRv) })}\n`);
      return;
    }
    const w: Watcher = { resource, namespace, res, bookmarks };
    const inNs = (o: KubeObject) => !namespace || o.metadata?.namespace === namespace;
    let head = '';
    if (fromRv === undefined) {
      for (const o of this.items(resource, namespace)) head += this.eventLine('ADDED', o);
    } else {
      for (const ev of this.history) {
        if (ev.rv > fromRv && ev.resource === resource && inNs(ev.object)) head += this.eventLine(ev.type, ev.object);
      }
    }
    if (head) res.write(head); else res.flushHeaders();
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
  }
}

function status(code: number, reason: string, message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}
function goneStatus(rv: number): object {
  return status(410, 'Expired', `too old resource version: ${rv}`);
}
function sendJson(res: ServerResponse, code: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

// ---- objects as the API serves them

/** A ClusterIP Service with its ports (protocol TCP and targetPort = port unless given). */
export function service(namespace: string, name: string, clusterIP: string, ports: Array<{ name?: string; port: number; protocol?: string; targetPort?: number | string }>): V1Service {
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: { namespace, name },
    spec: {
      type: 'ClusterIP', clusterIP, clusterIPs: [clusterIP], ipFamilies: ['IPv4'],
      ports: ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol ?? 'TCP', targetPort: p.targetPort ?? p.port })),
    },
  };
}

/** An endpoint of a slice: its address and conditions (ready by default). */
export interface EndpointSpec { ip: string; ready?: boolean; serving?: boolean; terminating?: boolean }

/** An IPv4 EndpointSlice of `serviceName`, named `${serviceName}-${suffix}`. */
export function endpointSlice(namespace: string, serviceName: string, endpoints: Array<string | EndpointSpec>, ports: Array<{ name?: string; port: number; protocol?: string }>, suffix = 'abcde'): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
    metadata: { namespace, name: `${serviceName}-${suffix}`, labels: { 'kubernetes.io/service-name': serviceName, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    endpoints: endpoints.map((e) => {
      const s = typeof e === 'string' ? { ip: e } : e;
      return { addresses: [s.ip], conditions: { ready: s.ready ?? true, serving: s.serving ?? s.ready ?? true, terminating: s.terminating ?? false } };
    }),
    ports: ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol ?? 'TCP' })),
  };
}
