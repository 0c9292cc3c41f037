/**
 * The xdp_dnat loader's --kubernetes mode: the control plane runs in the
 * loader, keeping the maps it attached in step with the cluster, and serves
 * /metrics and /healthz. The loader calls runKubernetesMode() from its run()
 * hook, once the programs are attached and the maps pinned.
 */
import type { Output } from '../cli/output.js';
import { apiServer, loadKubeConfig } from './kubeconfig.js';
import { KubeController, type ControlledTable } from './controller.js';
import { parseListenAddr, serveMetrics } from './metrics.js';

/** Where --metrics-addr listens by default (the DaemonSet passes 0.0.0.0:9966). */
export const DEFAULT_METRICS_ADDR = '127.0.0.1:9966';

/**
 * Checks the mode's flags before the loader loads anything: the kubeconfig
 * loads (or the pod's service account is there), the metrics address
 * parses. Throws what loadKubeConfig / parseListenAddr throw.
 */
export function checkKubernetesMode(kubeconfig: string | undefined, metricsAddr: string): void {
  loadKubeConfig(kubeconfig);
  if (metricsAddr !== 'none') parseListenAddr(metricsAddr);
}

/** What the mode needs from the loader. */
export interface KubernetesModeContext {
  table: ControlledTable;
  /** --kubeconfig; undefined: the pod's service account. */
  kubeconfig?: string;
  /** --metrics-addr ("HOST:PORT"), or 'none' for no server. */
  metricsAddr: string;
  signal: AbortSignal;
  log(msg: string): void;
  /** Where one line per reconcile goes (JSON with json). */
  out: Output;
  json: boolean;
}

/**
 * Runs the control plane until `signal` aborts. Throws (before watching
 * anything) a BpfError when no kubeconfig can be loaded, an Error when the
 * metrics address cannot be listened on. Needs the kernel only through the
 * table (ServiceTable over the attached maps).
 */
export async function runKubernetesMode(ctx: KubernetesModeContext): Promise<void> {
  const kc = loadKubeConfig(ctx.kubeconfig);
  const controller = new KubeController({ kubeconfig: kc, table: ctx.table, log: ctx.log });
  const server = ctx.metricsAddr === 'none' ? undefined : await serveMetrics(ctx.metricsAddr, controller.metrics, () => controller.health());
  try {
    if (server) ctx.log(`kubernetes: metrics on ${server.url}/metrics, health on ${server.url}/healthz`);
    ctx.log(`kubernetes: watching services and endpointslices at ${apiServer(kc)}`);
    controller.onApplied((r) => {
      const x = r.result;
      if (r.generation > 1 && x.servicesAdded + x.servicesChanged + x.servicesRemoved + x.backendsRemoved === 0) return;
      const fields = {
        generation: r.generation, services: r.desired.services.length, backends: r.backends, skipped: r.desired.skipped.length,
        added: x.servicesAdded, changed: x.servicesChanged, removed: x.servicesRemoved, unchanged: x.servicesUnchanged, ms: Number(r.ms.toFixed(2)),
      };
      ctx.out.line(ctx.json ? JSON.stringify(fields)
        : `reconcile ${fields.generation}: ${fields.services} services, ${fields.backends} backends; ${fields.added} added, ${fields.changed} changed, ${fields.removed} removed, ${fields.unchanged} unchanged; ${fields.skipped} skipped; ${fields.ms} ms`);
    });
    controller.start();
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) return resolve();
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  } finally {
    await controller.stop();
    await server?.close();
  }
}
