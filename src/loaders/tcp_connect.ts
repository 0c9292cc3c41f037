/**
 * tcp_connect: every outgoing IPv4 TCP connect (pid, command, addresses and
 * ports, read from struct sock with CO-RE) and its close with the duration
 * and bytes sent/received, streamed through a ring buffer. The seed's kprobe
 * on tcp_connect where the kernel has kprobes; the sock:inet_sock_set_state
 * tracepoint everywhere. Says which it uses.
 *
 *   sudo npx tsx src/loaders/tcp_connect.ts [--json] [--probe auto|kprobe|tracepoint]
 */
import { runLesson } from '../cli/lesson.js';
import {
  addProbeOption, attachProbes, configureProbe, eventJson, formatEvent, HEADER, openEvents, type TcpConnectOptions,
} from '../lessons/tcp_connect.js';

await runLesson<TcpConnectOptions, { events: number; lost: number }>({
  lesson: 'tcp_connect',
  description: 'outgoing TCP connects (pid, comm, addresses, ports) and their closes (duration, bytes), as tcplife',
  json: true,
  iface: false,
  options: addProbeOption,
  configure: configureProbe,
  attach: attachProbes,
  async run(ctx) {
    const reader = openEvents(ctx.obj);
    ctx.defer(() => reader.close());
    const format = ctx.opts.json ? eventJson : formatEvent;
    if (!ctx.opts.json) ctx.out.line(HEADER);
    await reader.consume((ev) => ctx.out.line(format(ev)), { signal: ctx.signal });
    return { events: reader.consumed, lost: reader.lost ?? 0 };
  },
  summary: (ctx, r) => ctx.log(`${r.events} events, ${r.lost} lost`),
});
