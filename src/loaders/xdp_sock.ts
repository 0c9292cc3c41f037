/**
 * xdp_sock: steer UDP datagrams to one port into an AF_XDP socket and echo
 * them from user space through the socket's rings (or only count them).
 *
 *   sudo npx tsx src/loaders/xdp_sock.ts veth0 --port 7777 [--drop] [--json]
 */
import { InvalidArgumentError, Option } from 'commander';
import { pollEvery, runLesson } from '../cli/lesson.js';
import { XskSocket, type XskMode } from '../xsk/index.js';
import { countersMap, renderXsk, setPort, XskEcho, XskReporter, xskJson, xsksMap } from '../lessons/xdp_sock.js';

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError(`'${v}' is not a port (1-65535)`);
  return n;
}

let sock: XskSocket | undefined;

await runLesson<{ port: number; drop: boolean; bind: XskMode; queue: number }, XskEcho | undefined>({
  lesson: 'xdp_sock',
  description: 'steer UDP to a port into an AF_XDP socket and echo it from the rings (or --drop: count only)',
  json: true,
  options: (cmd) => cmd
    .requiredOption('--port <port>', 'UDP destination port to steer', parsePort)
    .option('--drop', 'only count the packets (no echo)', false)
    .addOption(new Option('--bind <mode>', 'AF_XDP bind mode (auto: zero-copy if the driver has it)').choices(['auto', 'copy', 'zerocopy']).default('auto'))
    .option('--queue <n>', 'RX queue to bind to', (v) => Number(v), 0),
  attach(ctx) {
    setPort(ctx.obj, ctx.opts.port);
    const s = XskSocket.open({ ifindex: ctx.iface.index, queue: ctx.opts.queue, mode: ctx.opts.bind });
    sock = s;
    ctx.defer(() => s.close());
    s.setInMap(xsksMap(ctx.obj));
    const link = ctx.own(ctx.obj.program('xdp_sock').attachXdp(ctx.iface.index, { mode: ctx.opts.mode, force: ctx.opts.force }));
    ctx.log(`attached ${link.description}; AF_XDP socket on queue ${s.queue} bound in ${s.mode} mode; UDP port ${ctx.opts.port}; Ctrl-C to stop`);
  },
  async run(ctx) {
    const s = sock!;
    const echo = new XskEcho(s, ctx.opts.drop);
    echo.start();
    const rep = new XskReporter(s, echo, countersMap(ctx.obj));
    await pollEvery(ctx, 1, () => {
      echo.flush();
      const snap = rep.snapshot();
      for (const l of ctx.opts.json ? [xskJson(snap)] : renderXsk(snap)) ctx.out.line(l);
    });
    return echo;
  },
});
