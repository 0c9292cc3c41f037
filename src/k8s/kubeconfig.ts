/**
 * Where the control plane finds the Kubernetes API: a kubeconfig file
 * (--kubeconfig PATH) or, in a pod, the service account the kubelet mounts
 * (KUBERNETES_SERVICE_HOST/PORT and /var/run/secrets/kubernetes.io/serviceaccount).
 */
import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { BpfError, Errno } from '../errors.js';

/** The service account's token, as the kubelet mounts it in a pod. */
export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Loads the client's configuration: from `path` when given, else the
 * in-cluster service account. Throws a BpfError (ENOENT) when the file is
 * missing or when neither is available, (EINVAL) when the file has no
 * current cluster. Needs no kernel.
 */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path !== undefined) {
    if (!existsSync(path)) throw new BpfError(`load kubeconfig ${path}`, Errno.ENOENT, 'no such file');
    try {
      kc.loadFromFile(path);
    } catch (e) {
      throw new BpfError(`load kubeconfig ${path}`, Errno.EINVAL, (e as Error).message.split('\n')[0]);
    }
    if (!kc.getCurrentCluster()) throw new BpfError(`load kubeconfig ${path}`, Errno.EINVAL, 'no current cluster (current-context names none)');
    return kc;
  }
  if (!process.env.KUBERNETES_SERVICE_HOST || !existsSync(SERVICE_ACCOUNT_TOKEN)) {
    throw new BpfError('load kubeconfig', Errno.ENOENT, `not in a pod (no KUBERNETES_SERVICE_HOST or no ${SERVICE_ACCOUNT_TOKEN}); give --kubeconfig PATH`);
  }
  kc.loadFromCluster();
  return kc;
}

/** "https://10.96.0.1:443" of the current cluster, for log lines. */
export function apiServer(kc: KubeConfig): string {
  return kc.getCurrentCluster()?.server ?? '(no cluster)';
}
