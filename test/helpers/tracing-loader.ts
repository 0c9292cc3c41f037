/**
 * A tracing loader with no interface (runLesson with `iface: false`) on the
 * test fixture bpf/testdata/tracing.bpf.c, run as
 * `tracing-loader.ts --object bpf/build/tracing.bpf.o --binary <path> [--calls N]`:
 * it attaches a tracepoint, a raw tracepoint and a uprobe on the binary's
 * traced_add, calls getppid N times, prints the counts as one JSON line on
 * stdout, then runs until stopped.
 */
import { runLesson } from '../../src/cli/lesson.js';
import { u32, u64 } from '../../src/codec.js';
import { parentPid } from '../../src/ffi/sys.js';

interface Opts { binary: string; calls: number }

await runLesson<Opts>({
  lesson: 'tracing',
  description: 'tracing probe loader (no interface)',
  iface: false,
  options: (cmd) => cmd.requiredOption('--binary <path>', 'binary with traced_add').option('--calls <n>', 'getppid calls', Number, 3),
  configure: (obj) => {
    obj.setConst('target_tgid', process.pid);
    obj.setConst('getppid_nr', process.arch === 'arm64' ? 173 : 110);
  },
  attach(ctx) {
    for (const l of [
      ctx.obj.program('on_getppid').attachTracepoint('syscalls', 'sys_enter_getppid'),
      ctx.obj.program('on_sys_enter').attachRawTracepoint('sys_enter'),
      ctx.obj.program('on_traced_add').attachUprobe(ctx.opts.binary, { func: 'traced_add' }),
    ]) ctx.log(`attached ${ctx.own(l).description}`);
  },
  async run(ctx) {
    for (let i = 0; i < ctx.opts.calls; i++) parentPid();
    const m = ctx.obj.map('counts', u32, u64);
    ctx.out.line(JSON.stringify({ tracepoint: m.get(0), raw: m.get(1) }));
    ctx.log('counted');
    await ctx.sleep(60_000);
  },
});
