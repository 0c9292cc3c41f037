/**
 * deploy/: every manifest validated against the Kubernetes OpenAPI schemas
 * (kubernetes-models: the class for each object's apiVersion and kind, and
 * its validate()); the RBAC grants exactly list and watch on services and
 * endpointslices; the DaemonSet's arguments are flags the loader accepts
 * (read from its --help, which needs no root) and agree with the probes,
 * the metrics annotations, the image's paths; the Dockerfile's FROM lines
 * and the files it copies from the checkout exist.
 * No cluster and no image build here (none can run on these machines).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../../src/cli/build.js';

const DEPLOY = join(REPO_ROOT, 'deploy');
type Obj = Record<string, unknown>;
interface Manifest { file: string; obj: Obj }

/** Every object of every deploy/*.yaml, in file order. */
function manifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(DEPLOY).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(DEPLOY, file), 'utf8'))) {
      if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
      const obj = doc.toJS() as Obj | null;
      if (obj !== null) out.push({ file, obj });
    }
  }
  return out;
}

/** kubernetes-models' class for apiVersion/kind; throws for a kind it does not know. */
async function modelClass(apiVersion: string, kind: string): Promise<new (data: Obj) => { validate(): void }> {
  // "v1" -> kubernetes-models/v1, "apps/v1" -> kubernetes-models/apps/v1.
  let mod: Record<string, unknown>;
  try {
    mod = (await import(`kubernetes-models/${apiVersion}`)) as Record<string, unknown>;
  } catch {
    throw new Error(`no schema for apiVersion ${apiVersion}`);
  }
  const cls = mod[kind];
  if (typeof cls !== 'function') throw new Error(`no schema for ${apiVersion} ${kind}`);
  return cls as new (data: Obj) => { validate(): void };
}
async function validate(obj: Obj): Promise<void> {
  const Cls = await modelClass(String(obj.apiVersion), String(obj.kind));
  new Cls(obj).validate();
}

const all = manifests();
const ofKind = (kind: string) => all.filter((m) => m.obj.kind === kind).map((m) => m.obj);
const one = (kind: string): Obj => {
  const list = ofKind(kind);
  if (list.length !== 1) throw new Error(`deploy/: ${list.length} objects of kind ${kind}, expected exactly one`);
  return list[0];
};
const at = (o: unknown, ...path: Array<string | number>): unknown => path.reduce<unknown>((v, k) => (v as Record<string | number, unknown> | undefined)?.[k], o);
const name = (o: Obj) => String(at(o, 'metadata', 'name'));
const ns = (o: Obj) => at(o, 'metadata', 'namespace') as string | undefined;

describe('deploy/ manifests', () => {
  it('parse, and every object is valid against the Kubernetes schemas of its apiVersion and kind', async () => {
    expect(all.map((m) => `${m.obj.apiVersion} ${m.obj.kind}`).sort()).toEqual([
      'apps/v1 DaemonSet', 'rbac.authorization.k8s.io/v1 ClusterRole', 'rbac.authorization.k8s.io/v1 ClusterRoleBinding',
      'v1 ConfigMap', 'v1 Namespace', 'v1 ServiceAccount',
    ]);
    for (const m of all) {
      await expect(validate(m.obj), `${m.file}: ${m.obj.kind} ${name(m.obj)}`).resolves.toBeUndefined();
    }
  });

  it('the validator rejects broken objects (a container without a name, a port as a string, an unknown kind)', async () => {
    const ds = structuredClone(one('DaemonSet'));
    const c0 = at(ds, 'spec', 'template', 'spec', 'containers', 0) as Obj;
    delete c0.name;
    await expect(validate(ds)).rejects.toThrow(/containers\/0 must have required property '?name/);
    const ds2 = structuredClone(one('DaemonSet'));
    (at(ds2, 'spec', 'template', 'spec', 'containers', 0, 'ports', 0) as Obj).containerPort = '9966';
    await expect(validate(ds2)).rejects.toThrow(/containerPort/);
    const role = structuredClone(one('ClusterRole'));
    (at(role, 'rules', 0) as Obj).verbs = 'list';
    await expect(validate(role)).rejects.toThrow(/verbs/);
    await expect(validate({ apiVersion: 'apps/v1', kind: 'Deploymentt', metadata: { name: 'x' } })).rejects.toThrow('no schema for apps/v1 Deploymentt');
    await expect(validate({ apiVersion: 'example.com/v1', kind: 'Widget' })).rejects.toThrow('no schema for apiVersion example.com/v1');
  });

  it('namespaced objects are all in the namespace the manifests create', () => {
    const nsName = name(one('Namespace'));
    for (const m of all) {
      const cluster = ['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(String(m.obj.kind));
      expect(ns(m.obj), `${m.obj.kind} ${name(m.obj)}`).toBe(cluster ? undefined : nsName);
    }
  });

  it('RBAC: exactly list and watch on services and endpointslices, bound to the DaemonSet\'s service account, nothing more', () => {
    expect(ofKind('Role')).toEqual([]);
    expect(ofKind('RoleBinding')).toEqual([]);
    const role = one('ClusterRole');
    expect(role.aggregationRule).toBeUndefined();
    const grants: string[] = [];
    for (const r of role.rules as Obj[]) {
      expect(Object.keys(r).sort(), 'no resourceNames, no nonResourceURLs').toEqual(['apiGroups', 'resources', 'verbs']);
      for (const g of r.apiGroups as string[]) for (const res of r.resources as string[]) for (const v of r.verbs as string[]) grants.push(`${g}/${res}:${v}`);
    }
    expect(grants.sort()).toEqual(['/services:list', '/services:watch', 'discovery.k8s.io/endpointslices:list', 'discovery.k8s.io/endpointslices:watch']);

    const sa = one('ServiceAccount');
    const binding = one('ClusterRoleBinding');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: name(role) });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: name(sa), namespace: ns(sa) }]);
    const pod = at(one('DaemonSet'), 'spec', 'template', 'spec') as Obj;
    expect(pod.serviceAccountName).toBe(name(sa));
    expect(pod.automountServiceAccountToken).not.toBe(false);
  });
});

/** Flags of `xdp_dnat --help` ("--pin-dir" -> true when it takes a value). */
function loaderFlags(): Map<string, boolean> {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'loaders', 'xdp_dnat.ts'), '--help'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`xdp_dnat --help exited ${r.status}: ${r.stderr}`);
  const flags = new Map<string, boolean>();
  for (const m of r.stdout.matchAll(/^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)(\s+<[^>]+>)?/gm)) flags.set(m[1], m[2] !== undefined);
  return flags;
}
/**
 * The flags of the loader's --kubernetes mode, from the contract with the
 * helper that adds them (K8S_CONTRACT.md), while this branch's loader does
 * not have them yet. The test uses them only when --help lacks
 * --kubernetes, and then checks that exactly these are missing; once the
 * loader has the mode, --help alone decides.
 */
const CONTRACT_KUBERNETES_FLAGS = new Map([['--kubernetes', false], ['--kubeconfig', true], ['--metrics-addr', true]]);

describe('deploy/ DaemonSet', () => {
  const ds = one('DaemonSet');
  const pod = at(ds, 'spec', 'template', 'spec') as Obj;
  const containers = pod.containers as Obj[];
  const c = containers[0];
  const args = c.args as string[];
  /** The value after `flag` in args. */
  const arg = (flag: string): string | undefined => { const i = args.indexOf(flag); return i < 0 ? undefined : args[i + 1]; };
  let help: Map<string, boolean>;
  beforeAll(() => { help = loaderFlags(); }, 150_000);

  it('runs the loader with flags it accepts, each with a value when it takes one', () => {
    expect(help.get('--pin-dir')).toBe(true); // --help was read
    const flags = new Map(help);
    if (!help.has('--kubernetes')) {
      const missing = [...new Set(args.filter((a) => a.startsWith('--')))].filter((f) => !help.has(f));
      expect(missing.every((f) => CONTRACT_KUBERNETES_FLAGS.has(f)), `unknown flags ${missing.join(' ')}`).toBe(true);
      for (const [f, v] of CONTRACT_KUBERNETES_FLAGS) flags.set(f, v);
    }
    expect(args[0]).toBe('$(LB_IFACE)');
    for (let i = 1; i < args.length; i++) {
      const f = args[i];
      expect(flags.has(f), `flag ${f} in ${args.join(' ')}`).toBe(true);
      if (flags.get(f)) {
        expect(args[i + 1], `value of ${f}`).toBeDefined();
        expect(args[i + 1].startsWith('--'), `value of ${f}`).toBe(false);
        i++;
      }
    }
    expect(args).toContain('--kubernetes');
    expect(args).not.toContain('--service'); // the contract: --kubernetes and --service exclude each other
    expect(args).not.toContain('--kubeconfig'); // in-cluster config
  });

  it('the interface comes from $(LB_IFACE), set from a ConfigMap key that exists', () => {
    const env = c.env as Obj[];
    const iface = env.find((e) => e.name === 'LB_IFACE')!;
    const ref = at(iface, 'valueFrom', 'configMapKeyRef') as { name: string; key: string };
    const cm = one('ConfigMap');
    expect(name(cm)).toBe(ref.name);
    expect(at(cm, 'data', ref.key)).toMatch(/^[a-zA-Z0-9_.-]{1,15}$/);
  });

  it('host network, its DNS policy, every node, one node at a time', () => {
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(at(ds, 'spec', 'updateStrategy')).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
    expect(containers).toHaveLength(1);
  });

  it('not privileged: root with exactly CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON', () => {
    const sc = c.securityContext as Obj;
    expect(sc.privileged).toBe(false);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.runAsUser).toBe(0);
    expect(sc.capabilities).toEqual({ drop: ['ALL'], add: ['BPF', 'NET_ADMIN', 'PERFMON'] });
    expect(pod.securityContext).toBeUndefined(); // nothing at pod level overrides it
  });

  it('the host\'s bpffs mounted (not Bidirectional: that needs privileged), --pin-dir in it', () => {
    const vol = (pod.volumes as Obj[]).find((v) => at(v, 'hostPath', 'path') === '/sys/fs/bpf')!;
    expect(vol).toBeDefined();
    const mount = (c.volumeMounts as Obj[]).find((m) => m.name === vol.name)!;
    expect(mount.mountPath).toBe('/sys/fs/bpf');
    expect(mount.readOnly).not.toBe(true);
    expect(mount.mountPropagation).not.toBe('Bidirectional');
    expect(arg('--pin-dir')).toBe('/sys/fs/bpf/libbpf-ts/lb');
  });

  it('readiness on /healthz, liveness on /metrics, the prometheus annotations: all at the port --metrics-addr listens on, on every address', () => {
    const addr = arg('--metrics-addr')!;
    expect(addr).toBe('0.0.0.0:9966'); // the kubelet probes the pod IP: the node's address under hostNetwork
    const port = Number(addr.split(':')[1]);
    const ports = c.ports as Obj[];
    const named = ports.find((p) => p.containerPort === port)!;
    expect(named).toMatchObject({ containerPort: port, hostPort: port, protocol: 'TCP' });
    // Liveness not on /healthz: that one is 503 until the first sync and after a refused apply, which a restart does not cure.
    for (const [probe, path] of [['readinessProbe', '/healthz'], ['livenessProbe', '/metrics']]) {
      expect(at(c, probe, 'httpGet', 'path'), probe).toBe(path);
      expect([port, named.name], probe).toContain(at(c, probe, 'httpGet', 'port'));
    }
    const ann = at(ds, 'spec', 'template', 'metadata', 'annotations') as Record<string, string>;
    expect(ann).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/metrics' });
  });

  it('resource requests and a memory limit', () => {
    expect(at(c, 'resources', 'requests', 'cpu')).toBeDefined();
    expect(at(c, 'resources', 'requests', 'memory')).toBeDefined();
    expect(at(c, 'resources', 'limits', 'memory')).toBeDefined();
  });

  it('the command and --object are the paths the Dockerfile puts in the image', () => {
    const df = dockerfile();
    const workdir = df.filter((l) => l.op === 'WORKDIR').pop()!.rest;
    const copiedTo = df.filter((l) => l.op === 'COPY' && l.stage === df.finalStage).map((l) => posix.resolve(workdir, l.dest!));
    const inImage = (p: string) => copiedTo.some((d) => p === d || p.startsWith(`${d}/`));
    expect(c.command).toEqual(['node', '/app/dist/loaders/xdp_dnat.js']);
    expect(inImage('/app/dist/loaders/xdp_dnat.js')).toBe(true);
    expect(existsSync(join(REPO_ROOT, 'src', 'loaders', 'xdp_dnat.ts'))).toBe(true); // what tsc turns into dist/loaders/xdp_dnat.js
    expect(arg('--object')).toBe('/app/bpf/build/xdp_dnat.bpf.o');
    expect(inImage(arg('--object')!)).toBe(true);
    const entry = df.filter((l) => l.op === 'ENTRYPOINT').pop()!.rest;
    expect(JSON.parse(entry)).toEqual(c.command);
  });
});

interface DockerLine { op: string; rest: string; stage: number; src?: string[]; dest?: string; from?: string }
/** The Dockerfile's instructions (continuations joined, comments dropped), each with the index of its stage. */
function dockerfile(): DockerLine[] & { finalStage: number; stages: Array<{ image: string; as?: string }> } {
  const text = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stages: Array<{ image: string; as?: string }> = [];
  const lines: DockerLine[] = [];
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (!l || l.startsWith('#')) continue;
    const m = /^([A-Z]+)\s+(.*)$/.exec(l);
    if (!m) throw new Error(`Dockerfile: cannot read '${l}'`);
    const [, op, rest] = m;
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (!f) throw new Error(`Dockerfile: bad FROM '${rest}'`);
      stages.push({ image: f[1], as: f[2] });
    }
    const line: DockerLine = { op, rest, stage: stages.length - 1 };
    if (op === 'COPY') {
      const words = rest.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='));
      const paths = words.filter((w) => !w.startsWith('--'));
      line.from = from?.slice('--from='.length);
      line.src = paths.slice(0, -1);
      line.dest = paths[paths.length - 1];
    }
    lines.push(line);
  }
  return Object.assign(lines, { finalStage: stages.length - 1, stages });
}

describe('deploy/Dockerfile', () => {
  const df = dockerfile();

  it('two stages on Node.js 20 slim: a named build stage, then the image', () => {
    expect(df.stages).toHaveLength(2);
    expect(df.stages[0]).toEqual({ image: 'node:20-bookworm-slim', as: 'build' });
    expect(df.stages[1]).toEqual({ image: 'node:20-bookworm-slim', as: undefined });
    expect(df.filter((l) => l.op === 'FROM')).toHaveLength(2);
    const known = new Set(['FROM', 'RUN', 'WORKDIR', 'COPY', 'ENV', 'USER', 'ENTRYPOINT', 'CMD']);
    for (const l of df) expect(known.has(l.op), l.op).toBe(true);
  });

  it('what it copies from the checkout exists, and the build context (Dockerfile.dockerignore) lets it in', () => {
    const ignore = readFileSync(join(DEPLOY, 'Dockerfile.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(ignore[0]).toBe('**');
    const allowed = ignore.slice(1).map((l) => { expect(l.startsWith('!'), l).toBe(true); return l.slice(1).replace(/\/$/, ''); });
    const copies = df.filter((l) => l.op === 'COPY' && l.from === undefined);
    expect(copies.length).toBeGreaterThan(3);
    for (const l of copies) {
      for (const s of l.src!) {
        const p = s.replace(/\/$/, '');
        expect(existsSync(join(REPO_ROOT, p)), `COPY ${s}`).toBe(true);
        expect(allowed.some((a) => p === a || p.startsWith(`${a}/`)), `${s} in the build context`).toBe(true);
      }
    }
    for (const a of allowed) expect(existsSync(join(REPO_ROOT, a)), `!${a}`).toBe(true);
  });

  it('the image stage copies from the build stage what that stage makes, and installs libbpf1', () => {
    const fromBuild = df.filter((l) => l.op === 'COPY' && l.from !== undefined);
    expect(new Set(fromBuild.map((l) => l.from))).toEqual(new Set(['build']));
    expect(fromBuild.every((l) => l.stage === df.finalStage)).toBe(true);
    const buildRuns = df.filter((l) => l.op === 'RUN' && l.stage === 0).map((l) => l.rest).join('\n');
    expect(buildRuns).toContain('make -s -C bpf xdp_dnat'); // -> bpf/build/xdp_dnat.bpf.o (bpf/Makefile's BUILD)
    expect(buildRuns).toContain('tsc -p tsconfig.build.json'); // -> dist/ (its outDir)
    const outDir = (JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.build.json'), 'utf8')) as { compilerOptions: { outDir: string } }).compilerOptions.outDir;
    expect(fromBuild.map((l) => l.src![0])).toEqual(expect.arrayContaining([`/src/${outDir}/`, '/src/bpf/build/xdp_dnat.bpf.o', '/src/node_modules/']));
    const imageRuns = df.filter((l) => l.op === 'RUN' && l.stage === df.finalStage).map((l) => l.rest).join('\n');
    expect(imageRuns).toMatch(/apt-get install .*\blibbpf1\b/);
    expect(imageRuns).not.toMatch(/\bclang\b/);
  });
});
