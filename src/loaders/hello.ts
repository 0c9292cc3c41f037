/**
 * hello: attach an XDP program that bpf_printk()s every packet, and stream
 * its lines (only this program's: they carry a tag set at load time) from
 * trace_pipe until Ctrl-C.
 *
 *   sudo tsx src/loaders/hello.ts veth0
 */
import { randomInt } from 'node:crypto';
import { runLesson } from '../cli/lesson.js';
import { openTracePipe } from '../trace.js';

const tag = randomInt(1, 2 ** 31);

await runLesson({
  lesson: 'hello',
  description: 'XDP hello world: bpf_printk on every packet, streamed from trace_pipe',
  configure: (obj) => obj.setConst('trace_tag', tag),
  async run({ signal, out }) {
    const prefix = `hello ${tag}: `;
    const pipe = openTracePipe((l) => l.message.startsWith(prefix));
    signal.addEventListener('abort', () => pipe.close());
    for await (const l of pipe) out.line(`${l.timestamp.toFixed(6)} ${l.task}: ${l.message.slice(prefix.length)}`);
  },
});
