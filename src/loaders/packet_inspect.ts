/**
 * packet_inspect: attach an XDP program that parses Ethernet and IPv4 and
 * bpf_printk()s source, destination and protocol of every IPv4 packet;
 * stream its lines from trace_pipe as dotted quads and protocol names.
 *
 *   sudo npx tsx src/loaders/packet_inspect.ts veth0 [--json]
 *
 * trace_pipe is opened before anything is loaded: when another process
 * reads it (the kernel allows one reader), the loader says which one and
 * stops with nothing attached.
 */
import { randomInt } from 'node:crypto';
import { runLesson } from '../cli/lesson.js';
import { formatInspect, inspectJson, openInspectStream, type InspectStream } from '../lessons/packet_inspect.js';

const tag = randomInt(1, 2 ** 31);
let stream: InspectStream | undefined;

await runLesson({
  lesson: 'packet_inspect',
  description: 'parse Ethernet + IPv4 at XDP and print source, destination and protocol of every IPv4 packet',
  json: true,
  configure: (obj) => {
    // Before load and attach: a busy trace_pipe stops us here (EBUSY naming its reader).
    stream = openInspectStream(tag);
    obj.setConst('trace_tag', tag);
  },
  async run({ signal, out, opts, defer }) {
    const s = stream!;
    defer(() => s.close());
    signal.addEventListener('abort', () => s.close());
    for await (const e of s) out.line(opts.json ? inspectJson(e) : formatInspect(e));
  },
});
