/**
 * packet_inspect: attach an XDP program that parses Ethernet and IPv4 and
 * bpf_printk()s source, destination and protocol of every IPv4 packet;
 * stream its lines from trace_pipe as dotted quads and protocol names.
 *
 *   sudo npx tsx src/loaders/packet_inspect.ts veth0 [--json]
 */
import { randomInt } from 'node:crypto';
import { runLesson } from '../cli/lesson.js';
import { formatInspect, inspectJson, openInspectStream } from '../lessons/packet_inspect.js';

const tag = randomInt(1, 2 ** 31);

await runLesson({
  lesson: 'packet_inspect',
  description: 'parse Ethernet + IPv4 at XDP and print source, destination and protocol of every IPv4 packet',
  json: true,
  configure: (obj) => obj.setConst('trace_tag', tag),
  async run({ signal, out, opts }) {
    const stream = openInspectStream(tag);
    signal.addEventListener('abort', () => stream.close());
    for await (const e of stream) out.line(opts.json ? inspectJson(e) : formatInspect(e));
  },
});
