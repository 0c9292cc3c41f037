/**
 * cgroup_sock: refuse IPv4 connects to some ports for the processes of one
 * cgroup v2 group (a cgroup/connect4 program attached through a bpf_link),
 * and show every decision as it happens (pid, command, address, port).
 * Processes of other cgroups are untouched.
 *
 *   sudo npx tsx src/loaders/cgroup_sock.ts --deny 8080 --deny 5432
 *   sudo npx tsx src/loaders/cgroup_sock.ts --deny 22 --cgroup /sys/fs/cgroup/system.slice/foo.service --json
 *
 * Without --cgroup the loader makes <cgroup2>/libbpf-ts-cgroup_sock (cgroup2
 * found in /proc/mounts) and removes it at exit, moving what is left in it
 * to its parent; put a shell in it with
 *   sudo sh -c 'echo $$ > <that path>/cgroup.procs; exec bash'
 */
import { InvalidArgumentError } from 'commander';
import { runLesson } from '../cli/lesson.js';
import { Cgroup } from '../cgroup.js';
import { DEFAULT_CGROUP, PROGRAM, PortPolicy, formatCounts, formatEvent, parsePort } from '../lessons/cgroup_sock.js';

interface Opts {
  deny?: number[];
  cgroup?: string;
}

function collect(v: string, prev: number[] | undefined): number[] {
  try {
    return [...(prev ?? []), parsePort(v)];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

await runLesson<Opts, PortPolicy>({
  lesson: 'cgroup_sock',
  description: 'refuse IPv4 connects to listed ports for the processes of one cgroup (cgroup/connect4 through a bpf_link); show every decision',
  json: true,
  iface: false,
  options: (cmd) => cmd
    .option('--deny <port>', 'refuse connects to this port (repeatable)', collect)
    .option('--cgroup <path>', `an existing cgroup v2 directory (default: make <cgroup2 root>/${DEFAULT_CGROUP}, removed at exit)`),
  attach(ctx) {
    const { obj, opts, log } = ctx;
    const policy = PortPolicy.fromObject(obj);
    for (const p of opts.deny ?? []) policy.deny(p);
    const cg = opts.cgroup ? Cgroup.open(opts.cgroup) : Cgroup.create(DEFAULT_CGROUP);
    ctx.defer(() => cg.remove());
    if (cg.created) log(`made cgroup ${cg.path} (removed at exit)`);
    const link = ctx.own(obj.program(PROGRAM).attachCgroup(cg.path));
    log(`attached ${link.description}; denied ports: ${policy.ports().join(', ') || 'none'}`);
    log(`run something in it: sudo sh -c 'echo $$ > ${cg.path}/cgroup.procs; exec bash'`);
    log('Ctrl-C to stop');
  },
  async run(ctx) {
    const policy = PortPolicy.fromObject(ctx.obj);
    const reader = policy.events();
    ctx.defer(() => reader.close());
    await reader.consume((e) => ctx.out.line(ctx.opts.json ? JSON.stringify(e) : formatEvent(e)), { signal: ctx.signal });
    return policy;
  },
  summary: (ctx, policy) => ctx.log(formatCounts(policy.counts())),
});
