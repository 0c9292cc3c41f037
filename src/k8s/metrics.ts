/**
 * What an operator scrapes: the control plane's metrics in Prometheus text
 * format (prom-client, in a registry of its own, not the global one) and a
 * health check, served over HTTP on --metrics-addr:
 *
 *   GET /metrics   the metrics below (and the process's, from prom-client)
 *   GET /healthz   200 "ok" once the initial sync is applied and the last
 *                  apply worked; 503 with the reason before that
 *
 * Metrics (prefix xdp_dnat_):
 *   services, backends                       gauges: what the last apply wrote
 *   service_packets_total, service_bytes_total
 *       per service, from the data plane's service_hits, labelled
 *       service="VIP:PORT/PROTO", namespace, name, port (the port's name)
 *   reconciles_total{result="ok|error"}      counter
 *   reconcile_duration_seconds               histogram: translate + apply
 *   watch_restarts_total{resource,kind="rewatch|relist"}
 *   api_errors_total{resource}               failed list/watch requests
 *   skipped_objects                          gauge: objects the last run skipped
 *   synced, api_reachable                    0 or 1
 */
import { createServer, type Server } from 'node:http';
import type { V1Service } from '@kubernetes/client-node';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Reconciled } from './reconciler.js';
import type { ResourceName } from './source.js';

/** A service's counters as the data plane holds them (ServiceTable.list() gives these fields). */
export interface ServiceHits {
  vip: string;
  port: number;
  proto: string;
  packets: number;
  bytes: number;
}

/** The Kubernetes object a load balancer service came from. */
export interface ServiceOrigin {
  namespace: string;
  name: string;
  /** The port's name ('' when unnamed). */
  port: string;
}

/**
 * "VIP:PORT/PROTO" → the Service (and port name) it came from, for every
 * port of every Service with an IPv4 cluster IP. Only labels: translate.ts
 * decides what is applied.
 */
export function serviceOrigins(services: Iterable<V1Service>): Map<string, ServiceOrigin> {
  const out = new Map<string, ServiceOrigin>();
  for (const s of services) {
    const ip = s.spec?.clusterIPs?.[0] ?? s.spec?.clusterIP;
    if (!ip || ip === 'None') continue;
    for (const p of s.spec?.ports ?? []) {
      const proto = (p.protocol ?? 'TCP').toLowerCase();
      out.set(`${ip}:${p.port}/${proto}`, { namespace: s.metadata?.namespace ?? '', name: s.metadata?.name ?? '', port: p.name ?? '' });
    }
  }
  return out;
}

/** Where the metrics read the live figures. */
export interface MetricsSources {
  /** The services' packet and byte counters (read on every scrape). */
  hits(): readonly ServiceHits[];
  /** Labels for the services (read on every scrape). */
  origins(): ReadonlyMap<string, ServiceOrigin>;
  synced(): boolean;
  reachable(): boolean;
}

/** The control plane's metrics (see the file's header). Needs no kernel. */
export class ControlPlaneMetrics {
  readonly registry = new Registry();
  private readonly services: Gauge;
  private readonly backends: Gauge;
  private readonly reconciles: Counter<'result'>;
  private readonly latency: Histogram;
  private readonly restarts: Counter<'resource' | 'kind'>;
  private readonly apiErrors: Counter<'resource'>;
  private readonly skipped: Gauge;

  constructor(src: MetricsSources, { processMetrics = true }: { processMetrics?: boolean } = {}) {
    const r = this.registry;
    const P = 'xdp_dnat_';
    this.services = new Gauge({ name: `${P}services`, help: 'Services in the load balancer (VIP:PORT/PROTO), as the last apply wrote them', registers: [r] });
    this.backends = new Gauge({ name: `${P}backends`, help: 'Backends over all services, as the last apply wrote them', registers: [r] });
    const labels = ['service', 'namespace', 'name', 'port'] as const;
    let scraped: Array<{ l: Record<(typeof labels)[number], string>; packets: number; bytes: number }> = [];
    let scrapedAt = -Infinity;
    // Both counters of one scrape share one read of the maps.
    const read = () => {
      if (performance.now() - scrapedAt < 500) return;
      scrapedAt = performance.now();
      const origins = src.origins();
      scraped = src.hits().map((h) => {
        const service = `${h.vip}:${h.port}/${h.proto}`;
        const o = origins.get(service);
        return { l: { service, namespace: o?.namespace ?? '', name: o?.name ?? '', port: o?.port ?? '' }, packets: h.packets, bytes: h.bytes };
      });
    };
    new Counter({
      name: `${P}service_packets_total`, help: 'Packets the data plane sent to a service\'s backends (service_hits)', labelNames: labels, registers: [r],
      collect() { read(); this.reset(); for (const s of scraped) this.inc(s.l, s.packets); },
    });
    new Counter({
      name: `${P}service_bytes_total`, help: 'Bytes the data plane sent to a service\'s backends (service_hits)', labelNames: labels, registers: [r],
      collect() { read(); this.reset(); for (const s of scraped) this.inc(s.l, s.bytes); },
    });
    this.reconciles = new Counter({ name: `${P}reconciles_total`, help: 'Reconciles run (desired state computed and applied)', labelNames: ['result'], registers: [r] });
    this.reconciles.inc({ result: 'ok' }, 0);
    this.reconciles.inc({ result: 'error' }, 0);
    this.latency = new Histogram({
      name: `${P}reconcile_duration_seconds`, help: 'Time of one reconcile: desired state from the caches, then the maps written', registers: [r],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
    });
    this.restarts = new Counter({ name: `${P}watch_restarts_total`, help: 'Watches started again: from the last resourceVersion (rewatch) or after a 410 Gone (relist)', labelNames: ['resource', 'kind'], registers: [r] });
    this.apiErrors = new Counter({ name: `${P}api_errors_total`, help: 'Failed list or watch requests to the Kubernetes API', labelNames: ['resource'], registers: [r] });
    for (const resource of ['services', 'endpointslices']) {
      this.apiErrors.inc({ resource }, 0);
      for (const kind of ['rewatch', 'relist']) this.restarts.inc({ resource, kind }, 0);
    }
    this.skipped = new Gauge({ name: `${P}skipped_objects`, help: 'Objects (or parts of them) the last reconcile skipped, each logged once', registers: [r] });
    new Gauge({ name: `${P}synced`, help: '1 once the initial list of both resources is applied', registers: [r], collect() { this.set(src.synced() ? 1 : 0); } });
    new Gauge({ name: `${P}api_reachable`, help: '1 while every watch runs, 0 from a failure until they run again', registers: [r], collect() { this.set(src.reachable() ? 1 : 0); } });
    if (processMetrics) collectDefaultMetrics({ register: r });
  }

  /** After an apply. */
  reconciled(x: Reconciled): void {
    this.services.set(x.desired.services.length);
    this.backends.set(x.backends);
    this.skipped.set(x.desired.skipped.length);
    this.reconciles.inc({ result: 'ok' });
    this.latency.observe(x.ms / 1000);
  }

  /** After a failed apply. */
  reconcileFailed(): void {
    this.reconciles.inc({ result: 'error' });
  }

  /** A watch started again. */
  watchRestart(resource: ResourceName, relist: boolean): void {
    this.restarts.inc({ resource, kind: relist ? 'relist' : 'rewatch' });
  }

  /** A failed request. */
  apiError(resource: ResourceName): void {
    this.apiErrors.inc({ resource });
  }

  /** The Prometheus text. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** Health as /healthz reports it. */
export interface Health {
  ok: boolean;
  /** Why not, for the 503 body. */
  reason?: string;
}

/** A running metrics server. */
export interface MetricsServer {
  /** "http://HOST:PORT" */
  readonly url: string;
  /** Stops listening and ends open connections. Safe twice. */
  close(): Promise<void>;
}

/**
 * Parses "HOST:PORT" (an IPv4 address or a name, port 0-65535; 0 picks a
 * free one). Throws a RangeError saying what is wrong.
 */
export function parseListenAddr(text: string): { host: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new RangeError(`bad listen address '${text}': expected HOST:PORT, e.g. 127.0.0.1:9966 or 0.0.0.0:9966`);
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port };
}

/**
 * Serves /metrics and /healthz on `addr` ("HOST:PORT"). Rejects with the
 * listen error (EADDRINUSE, EACCES ...) in "listen metrics on ADDR: cause
 * (ENAME)" form.
 */
export async function serveMetrics(addr: string, metrics: ControlPlaneMetrics, health: () => Health): Promise<MetricsServer> {
  const { host, port } = parseListenAddr(addr);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'Content-Type': 'text/plain' }).end('method not allowed\n');
    } else if (path === '/metrics') {
      metrics.text().then(
        (text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
        (e: Error) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${e.message}\n`),
      );
    } else if (path === '/healthz') {
      const h = health();
      res.writeHead(h.ok ? 200 : 503, { 'Content-Type': 'text/plain' }).end(h.ok ? 'ok\n' : `${h.reason ?? 'not ready'}\n`);
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const why = e.code === 'EADDRINUSE' ? 'address already in use' : e.code === 'EADDRNOTAVAIL' ? 'no such local address' : e.code === 'EACCES' ? 'permission denied' : e.message;
      reject(new Error(`listen metrics on ${addr}: ${why} (${e.code ?? 'EINVAL'})`));
    });
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as { address: string; port: number };
  let closed = false;
  return {
    url: `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`,
    async close() {
      if (closed) return;
      closed = true;
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
