/**
 * A loader for testing runLesson itself (src/cli/lesson.ts) on the hello
 * object, run as `probe-loader.ts <iface> [--duration s]` with PROBE set to:
 * - "defer-then-fail": attach defers a step, then fails before attaching
 *   anything (the step must run; "detached" must not be printed);
 * - "summary": attaches hello with a trace tag, run() returns a value, and
 *   summary() prints it, reads the tag back from the object's .rodata map
 *   (which must still be open then) and counts the XDP programs on the
 *   interface (none: it runs after detaching).
 */
import { runLesson } from '../../src/cli/lesson.js';
import { bytes, u32 } from '../../src/codec.js';
import { queryXdp } from '../../src/xdp.js';

const TAG = 424242;
const mode = process.env.PROBE;

await runLesson<object, string>({
  lesson: 'hello',
  description: 'runLesson probe',
  configure: (obj) => obj.setConst('trace_tag', TAG),
  attach(ctx) {
    if (mode === 'defer-then-fail') {
      ctx.defer(() => ctx.log('deferred step ran'));
      throw new Error('attach probe: failed on purpose');
    }
    const link = ctx.own(ctx.obj.program('hello').attachXdp(ctx.iface.index, { mode: 'skb' }));
    ctx.log(`attached ${link.description}`);
  },
  async run(ctx) {
    await ctx.sleep(60_000);
    return 'from run';
  },
  summary(ctx, result) {
    const [info] = ctx.obj.maps.filter((m) => m.name.endsWith('.rodata'));
    const rodata = ctx.obj.map(info.name, u32, bytes(info.valueSize)).get(0)!;
    const tag = Buffer.from(rodata).readUInt32LE(0);
    ctx.log(`summary: ${result}, trace_tag ${tag}, ${queryXdp(ctx.iface.name).length} XDP programs on ${ctx.iface.name}`);
  },
});
