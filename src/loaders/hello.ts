/**
 * hello: attach an XDP program that bpf_printk()s every packet, and stream
 * its lines (only this program's: they carry a tag set at load time) from
 * trace_pipe until Ctrl-C.
 *
 *   sudo npx tsx src/loaders/hello.ts veth0
 *
 * trace_pipe is opened before anything is loaded: when another process
 * reads it (the kernel allows one reader), the loader says which one and
 * stops with nothing attached.
 */
import { randomInt } from 'node:crypto';
import { runLesson } from '../cli/lesson.js';
import { openTracePipe, type TracePipe } from '../trace.js';

const tag = randomInt(1, 2 ** 31);
const prefix = `hello ${tag}: `;
let pipe: TracePipe | undefined;

await runLesson({
  lesson: 'hello',
  description: 'XDP hello world: bpf_printk on every packet, streamed from trace_pipe',
  configure: (obj) => {
    // Before load and attach: a busy trace_pipe stops us here (EBUSY naming its reader).
    pipe = openTracePipe((l) => l.message.startsWith(prefix));
    obj.setConst('trace_tag', tag);
  },
  async run({ signal, out, defer }) {
    const p = pipe!;
    defer(() => p.close());
    signal.addEventListener('abort', () => p.close());
    for await (const l of p) out.line(`${l.timestamp.toFixed(6)} ${l.task}: ${l.message.slice(prefix.length)}`);
  },
});
