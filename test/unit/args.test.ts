/**
 * A loader's command line (lessonCommand of src/cli/lesson.ts): defaults,
 * --mode choices, --duration and other number parsing, --json only for
 * lessons that emit data, a lesson's own options, and error formatting.
 */
import { describe, expect, it } from 'vitest';
import { CommanderError } from 'commander';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { formatError, lessonCommand, libbpfLogLine, MAX_TIMER_SECONDS, parsePositiveInt, parseSeconds, type LessonSpec } from '../../src/cli/lesson.js';
import { setLibbpfLogger } from '../../src/ffi/log.js';
import { BpfObject } from '../../src/object.js';
import { REPO_ROOT } from '../../src/cli/build.js';
import { BpfError, VerifierError } from '../../src/errors.js';

const base: LessonSpec<object> = { lesson: 'hello', description: 'test lesson', run: async () => {} };

/** Parses user arguments the way runLesson does, with commander's error output silenced. */
function parse<O>(args: string[], spec: LessonSpec<O> = base as LessonSpec<O>) {
  const cmd = lessonCommand(spec).configureOutput({ writeErr: () => {}, writeOut: () => {} });
  cmd.parse(args, { from: 'user' });
  return { opts: cmd.opts(), args: cmd.args };
}

/** The CommanderError that parsing `args` throws. */
function parseError(args: string[], spec: LessonSpec<object> = base): CommanderError {
  try {
    parse(args, spec);
  } catch (e) {
    expect(e).toBeInstanceOf(CommanderError);
    return e as CommanderError;
  }
  throw new Error(`parsing ${args.join(' ')} did not fail`);
}

describe('lessonCommand', () => {
  it('has the documented defaults', () => {
    const { opts, args } = parse(['veth0']);
    expect(args).toEqual(['veth0']);
    expect(opts).toEqual({ mode: 'skb', force: false, verbose: false });
    expect(opts.duration).toBeUndefined();
    expect(opts.object).toBeUndefined();
  });

  it('takes every common option', () => {
    const { opts } = parse(['veth0', '--mode', 'native', '--force', '-v', '--duration', '2.5', '--object', '/tmp/x.bpf.o']);
    expect(opts).toEqual({ mode: 'native', force: true, verbose: true, duration: 2.5, object: '/tmp/x.bpf.o' });
    expect(parse(['veth0', '--verbose']).opts.verbose).toBe(true);
  });

  it('accepts exactly the XDP modes', () => {
    for (const m of ['skb', 'native', 'hw']) expect(parse(['veth0', '--mode', m]).opts.mode).toBe(m);
    const e = parseError(['veth0', '--mode', 'generic']);
    expect(e.code).toBe('commander.invalidArgument');
    expect(e.message).toMatch(/argument 'generic' is invalid\. Allowed choices are skb, native, hw\./);
  });

  it('refuses a --duration that is not a positive number of seconds', () => {
    for (const bad of ['0', '-1', 'abc', '', 'Infinity', '1s']) {
      const e = parseError(['veth0', '--duration', bad]);
      expect(e.code, bad).toBe('commander.invalidArgument');
      expect(e.message).toContain(`'${bad}' is not a positive number of seconds`);
    }
    expect(parse(['veth0', '--duration', '0.1']).opts.duration).toBe(0.1);
  });

  it('requires the interface and refuses unknown options and extra arguments', () => {
    expect(parseError([]).code).toBe('commander.missingArgument');
    expect(parseError(['veth0', '--nope']).code).toBe('commander.unknownOption');
    expect(parseError(['veth0', 'veth1']).code).toBe('commander.excessArguments');
  });

  it('offers --json only to lessons that emit data', () => {
    expect(parseError(['veth0', '--json']).code).toBe('commander.unknownOption');
    const spec: LessonSpec<object> = { ...base, json: true };
    expect(parse(['veth0'], spec).opts.json).toBe(false);
    expect(parse(['veth0', '--json'], spec).opts.json).toBe(true);
  });

  it("adds a lesson's own options", () => {
    const spec: LessonSpec<{ interval: number }> = {
      ...base,
      options: (cmd) => { cmd.option('--interval <n>', 'seconds between reports', parsePositiveInt, 1); },
    };
    expect(parse(['veth0'], spec).opts.interval).toBe(1);
    expect(parse(['veth0', '--interval', '5'], spec).opts.interval).toBe(5);
    const e = parseError(['veth0', '--interval', '1.5'], spec as LessonSpec<object>);
    expect(e.message).toContain("'1.5' is not a positive integer");
  });

  it('shows help with the lesson name and description (exit code 0)', () => {
    let help = '';
    const cmd = lessonCommand(base).configureOutput({ writeOut: (s) => { help += s; }, writeErr: () => {} });
    expect(() => cmd.parse(['--help'], { from: 'user' })).toThrow(expect.objectContaining({ code: 'commander.helpDisplayed', exitCode: 0 }));
    expect(help).toMatch(/^Usage: hello \[options\] <iface>/);
    expect(help).toContain('test lesson');
    for (const o of ['--mode <mode>', '--force', '--verbose', '--duration <seconds>', '--object <path>']) expect(help).toContain(o);
  });
});

describe('number parsers', () => {
  it('parseSeconds takes positive finite numbers', () => {
    expect(parseSeconds('3')).toBe(3);
    expect(parseSeconds('0.25')).toBe(0.25);
    expect(parseSeconds('1e1')).toBe(10);
    for (const bad of ['0', '-2', 'x', 'NaN', 'Infinity']) expect(() => parseSeconds(bad)).toThrow(/is not a positive number of seconds/);
  });

  it('parseSeconds refuses what a timer cannot wait (2^31-1 ms), instead of firing at once', () => {
    expect(MAX_TIMER_SECONDS).toBe(2147483);
    expect(parseSeconds(String(MAX_TIMER_SECONDS))).toBe(MAX_TIMER_SECONDS);
    for (const bad of ['2147484', '3000000', '1e10']) {
      expect(() => parseSeconds(bad)).toThrow(`'${bad}' is more than 2147483 seconds (about 24 days), the longest a timer waits`);
    }
    const e = parseError(['veth0', '--duration', '3000000']);
    expect(e.code).toBe('commander.invalidArgument');
    expect(e.exitCode).toBe(1); // runLesson exits 2 on any commander error but help
  });

  it('every loader option that becomes a timer refuses a too long wait with exit 2, before touching the kernel', () => {
    const cases: Array<[string, string]> = [
      ['hello', '--duration'], ['packet_counter', '--interval'], ['connection_tracker', '--interval'], ['xdp_dnat', '--interval'],
    ];
    for (const [lesson, opt] of cases) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'loaders', `${lesson}.ts`), 'lo', opt, '3000000'],
        { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 });
      expect(r.status, `${lesson} ${opt}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^error: option '${opt} <seconds>' argument '3000000' is invalid\\. '3000000' is more than 2147483 seconds`));
    }
  });

  it('parsePositiveInt takes positive integers only', () => {
    expect(parsePositiveInt('1')).toBe(1);
    expect(parsePositiveInt('4096')).toBe(4096);
    for (const bad of ['0', '-1', '1.5', 'ten', '']) expect(() => parsePositiveInt(bad)).toThrow(/is not a positive integer/);
  });
});

describe('formatError', () => {
  it('prints any error as "error: <message>"', () => {
    expect(formatError(new BpfError('find interface nosuch0', 19, 'no such interface'))).toBe('error: find interface nosuch0: no such interface (ENODEV)');
    expect(formatError(new Error('loading BPF programs needs root: run with sudo'))).toBe('error: loading BPF programs needs root: run with sudo');
    expect(formatError('plain')).toBe('error: plain');
  });

  it('prints a verifier rejection with its last log lines', () => {
    const e = new VerifierError('load object x.bpf.o', 'prog', 13, 'a\nb\ninvalid access to packet\nprocessed 2 insns (limit 1000000)\n');
    expect(formatError(e)).toBe('error: load object x.bpf.o: verifier rejected program prog:\n  a\n  b\n  invalid access to packet (EACCES)');
  });
});

describe('--verbose lines', () => {
  it("carry libbpf's name once, and the level only for warnings", () => {
    const lines: string[] = [];
    setLibbpfLogger((level, m) => lines.push(libbpfLogLine(level, m)), 'debug');
    try {
      BpfObject.open(join(REPO_ROOT, 'bpf', 'build', 'hello.bpf.o')).close(); // parsing the ELF logs at debug level; no root needed
    } finally {
      setLibbpfLogger(null);
    }
    // libbpf 1.1 says 'loading object from <path>', 1.3 'loading <path>'.
    expect(lines[0]).toBe(`libbpf: loading ${libbpfLoadingWords(lines[0])}${join(REPO_ROOT, 'bpf', 'build', 'hello.bpf.o')}`);
    expect(lines.length).toBeGreaterThan(3);
    for (const l of lines) {
      expect(l).toMatch(/^libbpf: /);
      expect(l).not.toMatch(/^libbpf: (libbpf|debug|info)/);
    }
    expect(libbpfLogLine('warn', 'map x: failed')).toBe('libbpf: warning: map x: failed');
    expect(libbpfLogLine('info', 'x')).toBe('libbpf: x');
  });
});

/** The words libbpf's version puts between 'loading' and the path. */
function libbpfLoadingWords(line: string): string {
  return line.startsWith('libbpf: loading object from ') ? 'object from ' : '';
}
