/**
 * Lists for the informers, as plain JSON: the same GET the client's
 * generated API makes (`/api/v1/services`, ...), with the kubeconfig's
 * credentials, TLS settings and proxy (KubeConfig.applyToHTTPSOptions), but
 * the body kept as JSON.parse gives it instead of being converted into the
 * client's model classes: that conversion (ObjectSerializer) costs about a
 * second for 10,000 Services and 10,000 EndpointSlices here, more than the
 * parse and the whole apply. The watch events the informer adds are plain
 * JSON too, so the cache holds one kind of object.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';

/** An HTTP error status as the informer expects it (statusCode 410 relists). */
export class ApiStatusError extends Error {
  constructor(readonly statusCode: number, message: string) {
    super(message);
    this.name = 'ApiStatusError';
  }
}

/**
 * GETs `path` from the current cluster and parses the list. Rejects with an
 * ApiStatusError for a status other than 200 ("list PATH: HTTP 403:
 * <the Status message>"), with the socket's error (code ECONNREFUSED, ...)
 * when the server cannot be reached, a SyntaxError for a body that is not
 * JSON. Needs no kernel.
 */
export async function listJson<T extends KubernetesObject>(kc: KubeConfig, path: string): Promise<KubernetesListObject<T>> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error(`list ${path}: no current cluster in the kubeconfig`);
  const url = new URL(server.replace(/\/$/, '') + path);
  const opts: https.RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
  await kc.applyToHTTPSOptions(opts);
  const request = url.protocol === 'http:' ? http.request : https.request;
  const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(url, opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  if (body.status !== 200) {
    let message = body.text.slice(0, 200);
    try { message = String((JSON.parse(body.text) as { message?: unknown }).message ?? message); } catch { /* not a Status */ }
    throw new ApiStatusError(body.status, `list ${path}: HTTP ${body.status}: ${message}`);
  }
  return JSON.parse(body.text) as KubernetesListObject<T>;
}
