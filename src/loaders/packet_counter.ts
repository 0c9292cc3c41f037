/**
 * packet_counter: attach an XDP program that counts IPv4 packets per IP
 * protocol in a hash map, and print the table (packets and rate per second)
 * every interval.
 *
 *   sudo npx tsx src/loaders/packet_counter.ts veth0 [--interval 2] [--json]
 */
import { parseSeconds, pollEvery, runLesson } from '../cli/lesson.js';
import { ProtoCounter, protoCountMap, protoJson, renderProtoTable } from '../lessons/packet_counter.js';

await runLesson<{ interval: number }>({
  lesson: 'packet_counter',
  description: 'count IPv4 packets per protocol in a BPF hash map and print the table every interval',
  json: true,
  options: (cmd) => cmd.option('--interval <seconds>', 'seconds between tables', parseSeconds, 2),
  async run(ctx) {
    const counter = new ProtoCounter(protoCountMap(ctx.obj));
    await pollEvery(ctx, ctx.opts.interval, () => {
      const s = counter.snapshot();
      for (const l of ctx.opts.json ? [protoJson(s)] : renderProtoTable(s)) ctx.out.line(l);
    });
  },
});
