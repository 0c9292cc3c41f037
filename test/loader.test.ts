/**
 * The loader plumbing's guarantees, through the hello loader as a user runs
 * it: SIGINT/SIGTERM/SIGHUP print "detached" and exit 0, SIGKILL too leaves
 * no XDP program on the interface and none of ours loaded; a closed stdout
 * stops it cleanly; bad input (unknown interface, not root, missing object,
 * a program the verifier rejects, bad arguments, someone else's XDP program
 * attached with bpftool) gets a one-line error, a non-zero exit and nothing
 * left attached.
 */
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryXdp } from '../src/index.js';
import { ensureObject, REPO_ROOT } from '../src/cli/build.js';
import { pairLab, run, sendUdp, type PairLab } from '../src/lab/index.js';
import { kernelTests, withTraceLock } from './helpers/kernel.js';
import { AS_NOBODY, eventually, processAlive, programLoaded, runLoader, startLoader, stopAllLoaders } from './helpers/loader.js';

describe.skipIf(!kernelTests())('the hello loader', () => {
  let lab: PairLab;
  let iface: string;
  beforeAll(async () => {
    lab = await pairLab('ldr');
    iface = lab.hostIf;
    ensureObject('hello');
  });
  afterAll(async () => {
    await stopAllLoaders();
    await lab?.down();
  });

  /** Starts hello on the lab interface and returns it with the id of the program it attached. */
  async function attached(args: string[] = []) {
    const p = startLoader('hello', [iface, ...args]);
    await p.waitFor(`attached xdp hello on ${iface} (skb mode); Ctrl-C to stop\n`);
    const progs = queryXdp(iface);
    expect(progs).toEqual([{ id: expect.any(Number), name: 'hello', mode: 'skb' }]);
    expect(programLoaded(progs[0].id)).toBe(true);
    return { p, id: progs[0].id };
  }

  /** Nothing on the interface, and program `id` gone from the kernel (it is freed asynchronously). */
  async function expectNothingLeft(id?: number) {
    expect(await eventually(() => queryXdp(iface).length === 0)).toBe(true);
    if (id !== undefined) expect(await eventually(() => !programLoaded(id), 10_000), `program ${id} still loaded`).toBe(true);
  }

  describe('stopping', () => {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      it(`detaches, says so and exits 0 on ${sig}`, async () => {
        await withTraceLock(async () => {
          const { p, id } = await attached();
          expect(await p.stop(sig)).toEqual({ code: 0, signal: null });
          expect(p.stderr()).toBe(`attached xdp hello on ${iface} (skb mode); Ctrl-C to stop\ndetached\n`);
          expect(queryXdp(iface)).toEqual([]); // detached before exiting
          await expectNothingLeft(id);
        });
      });
    }

    it('leaves nothing attached or loaded when killed with SIGKILL', async () => {
      await withTraceLock(async () => {
        const { p, id } = await attached();
        expect(await p.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
        expect(p.stderr()).not.toContain('detached');
        await expectNothingLeft(id);
      });
    });

    // The README's commands start the loader under launchers: npx tsx → npm exec → sh -c → tsx → node,
    // tsx → node. Whatever ends the launcher the user started, the loader stops too, detaching first.
    // (SIGINT to npx alone is not here: npm ignores it while its child runs; Ctrl-C in a terminal goes
    // to the whole process group, so the loader gets it too.)
    const launcherCases: Array<['npx' | 'tsx', NodeJS.Signals]> = [
      ['npx', 'SIGKILL'], ['npx', 'SIGTERM'], ['npx', 'SIGHUP'],
      ['tsx', 'SIGKILL'], ['tsx', 'SIGTERM'], ['tsx', 'SIGHUP'], ['tsx', 'SIGINT'],
    ];
    for (const [launcher, sig] of launcherCases) {
      it(`stops, detached, when its launcher ${launcher} gets ${sig}`, async () => {
        await withTraceLock(async () => {
          const p = startLoader('hello', [iface], { launcher });
          let pid: number | undefined;
          try {
            await p.waitFor(`attached xdp hello on ${iface} (skb mode); Ctrl-C to stop\n`);
            pid = p.loaderPid();
            expect(pid, 'the node process running the loader').toBeGreaterThan(0);
            const [{ id }] = queryXdp(iface);
            p.kill(sig);
            expect(await eventually(() => !processAlive(pid!), 5000), `loader ${pid} still running after ${sig} to ${launcher}`).toBe(true);
            await expectNothingLeft(id);
            // Every process of the chain has exited (they all held the output pipes).
            expect(await Promise.race([p.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))])).toBe(true);
            expect(p.stderr()).toMatch(/\ndetached\n$/);
          } finally {
            if (pid !== undefined && processAlive(pid)) process.kill(pid, 'SIGKILL');
          }
        });
      });
    }

    it("--verbose shows libbpf's lines, each prefixed once", async () => {
      await withTraceLock(async () => {
        const { p, id } = await attached(['--verbose', '--duration', '1']);
        expect(await p.exited).toEqual({ code: 0, signal: null });
        const lines = p.stderr().trimEnd().split('\n');
        const libbpf = lines.filter((l) => l.startsWith('libbpf'));
        expect(libbpf.length).toBeGreaterThan(3);
        expect(libbpf.every((l) => /^libbpf: (?!libbpf: |debug|info)/.test(l)), libbpf.join('\n')).toBe(true);
        expect(lines.at(-1)).toBe('detached');
        await expectNothingLeft(id);
      });
    });

    it('stops by itself after --duration', async () => {
      await withTraceLock(async () => {
        const { p, id } = await attached(['--duration', '0.5']);
        expect(await p.exited).toEqual({ code: 0, signal: null });
        expect(p.stderr()).toMatch(/\ndetached\n$/);
        await expectNothingLeft(id);
      });
    });

    it('stops cleanly when the reader of its stdout goes away', async () => {
      await withTraceLock(async () => {
        const { p, id } = await attached();
        p.child.stdout!.destroy();
        // Lines to write: the first write after the reader left gets EPIPE.
        for (let i = 0; i < 5 && p.child.exitCode === null; i++) {
          await sendUdp(lab.ns, lab.hostIp, 9, 3, 100);
          await new Promise((r) => setTimeout(r, 200));
        }
        const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
        const exit = await p.exited;
        clearTimeout(timer);
        expect(exit).toEqual({ code: 0, signal: null });
        expect(p.stderr()).toMatch(/\ndetached\n$/);
        await expectNothingLeft(id);
      });
    });
  });

  describe('bad input: one line on stderr, non-zero exit, nothing attached', () => {
    it('an unknown interface', async () => {
      const r = await runLoader('hello', ['nosuch0']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: find interface nosuch0: no such interface \(have: [^\n]*\) \(ENODEV\)\n$/);
      expect(r.stdout).toBe('');
    });

    it('not root (and the run leaves no tsx directory for uid 65534 behind)', async () => {
      // tsx keeps its cache and pipes in $TMPDIR/tsx-<uid>; one that root leaves in /tmp for
      // 65534 would lock the real nobody user out of tsx (EACCES). The suite's TMPDIR is a
      // directory of its own (test/setup/tmpdir.ts), so nothing may appear in its parent.
      expect(basename(tmpdir())).toMatch(/^libbpf-ts-test-/);
      const nobodyTsx = join(dirname(tmpdir()), 'tsx-65534');
      const before = existsSync(nobodyTsx);
      const r = await runLoader('hello', [iface], { prefix: AS_NOBODY });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('error: loading BPF programs needs root: run with sudo\n');
      expect(queryXdp(iface)).toEqual([]);
      if (!before) expect(existsSync(nobodyTsx), `${nobodyTsx} left behind`).toBe(false);
    });

    it('a missing object file', async () => {
      const r = await runLoader('hello', [iface, '--object', '/nonexistent.bpf.o']);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('error: open object /nonexistent.bpf.o: no such file (ENOENT)\n');
      expect(queryXdp(iface)).toEqual([]);
    });

    it('a directory as object file, and hw mode on a veth: each says why', async () => {
      const dir = await runLoader('hello', [iface, '--object', 'bpf']);
      expect(dir.code).toBe(1);
      expect(dir.stderr).toBe('error: open object bpf: is a directory, not a BPF object file (a .bpf.o built by clang -target bpf) (EISDIR)\n');
      const hw = await runLoader('hello', [iface, '--mode', 'hw']);
      expect(hw.code).toBe(1);
      expect(hw.stderr).toMatch(new RegExp(`^error: attach xdp hello to ${iface}: hw \\(offload\\) mode is not supported by ${iface}'s driver: it needs a NIC that offloads XDP .*\\(EINVAL\\)\n$`));
      expect(queryXdp(iface)).toEqual([]);
    });

    it('a program the verifier rejects: the error line, then the last verifier lines', async () => {
      const r = await runLoader('hello', [iface, '--object', ensureObject('testdata', 'broken')]);
      expect(r.code).toBe(1);
      const [first, ...rest] = r.stderr.trimEnd().split('\n');
      expect(first).toBe('error: load object broken.bpf.o: verifier rejected program hello:');
      expect(rest.length).toBeGreaterThan(0);
      expect(rest.length).toBeLessThanOrEqual(6);
      expect(rest.every((l) => l.startsWith('  '))).toBe(true);
      expect(r.stderr).toMatch(/invalid access to packet/);
      expect(r.stderr).toMatch(/ \(EACCES\)\n$/);
      expect(r.stderr).not.toContain('detached');
      expect(queryXdp(iface)).toEqual([]);
    });

    it('bad arguments exit 2 with commander\'s one line', async () => {
      const cases: Array<[string[], RegExp]> = [
        [[iface, '--mode', 'bogus'], /^error: option '--mode <mode>' argument 'bogus' is invalid\. Allowed choices are skb, native, hw\.\n$/],
        [[iface, '--duration', '0'], /^error: option '--duration <seconds>' argument '0' is invalid\. '0' is not a positive number of seconds\n$/],
        [[iface, '--duration', 'soon'], /'soon' is not a positive number of seconds\n$/],
        [[], /^error: missing required argument 'iface'\n$/],
        [[iface, '--bogus'], /^error: unknown option '--bogus'\n$/],
      ];
      const results = await Promise.all(cases.map(([args]) => runLoader('hello', args)));
      results.forEach((r, i) => {
        expect(r.code, cases[i][0].join(' ')).toBe(2);
        expect(r.stderr).toMatch(cases[i][1]);
      });
      expect(queryXdp(iface)).toEqual([]);
    });
  });

  describe("runLesson's order of clean-up (a probe loader on the hello object)", () => {
    const probe = join(REPO_ROOT, 'test', 'helpers', 'probe-loader.ts');

    it('a failed attach after defer(): the deferred step runs, nothing was attached, so no "detached"', async () => {
      const r = await runLoader('probe', [iface], { script: probe, env: { PROBE: 'defer-then-fail' } });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('error: attach probe: failed on purpose\ndeferred step ran\n');
      expect(queryXdp(iface)).toEqual([]);
    });

    it("summary() gets run()'s result and runs after detaching, while the object's maps still read", async () => {
      const r = await runLoader('probe', [iface, '--duration', '0.5'], { script: probe, env: { PROBE: 'summary' } });
      expect(r.stderr).toBe(`attached xdp hello on ${iface} (skb mode)\nsummary: from run, trace_tag 424242, 0 XDP programs on ${iface}\ndetached\n`);
      expect(r.code).toBe(0);
      expect(queryXdp(iface)).toEqual([]);
    });
  });

  describe("someone else's XDP program on the interface", () => {
    const other = ensureObject('testdata', 'pass');
    const pin = `/sys/fs/bpf/libbpf-ts-test-${process.pid}-pass`;
    const removeOther = async () => {
      await run(['ip', 'link', 'set', 'dev', iface, 'xdpgeneric', 'off']).catch(() => undefined);
      rmSync(pin, { force: true });
    };

    it('is named in the refusal and stays attached; --force replaces it', async () => {
      // Attached with bpftool over netlink, as another tool would (the
      // netlink attachment holds the program once the pin is gone).
      try {
        await run(['bpftool', 'prog', 'load', other, pin]);
        await run(['bpftool', 'net', 'attach', 'xdpgeneric', 'pinned', pin, 'dev', iface]);
        rmSync(pin);
        const [theirs] = queryXdp(iface);
        expect(theirs).toEqual({ id: expect.any(Number), name: 'xdp_pass', mode: 'skb' });

        const r = await runLoader('hello', [iface]);
        expect(r.code).toBe(1);
        expect(r.stderr).toBe(`error: attach xdp hello to ${iface}: interface already has XDP program 'xdp_pass' (id ${theirs.id}, skb mode); use --force to replace it (EBUSY)\n`);
        expect(queryXdp(iface)).toEqual([theirs]);

        await withTraceLock(async () => {
          const { p, id } = await attached(['--force']);
          expect(id).not.toBe(theirs.id);
          // Replaced: detached, and with its last reference gone, unloaded.
          expect(await eventually(() => !programLoaded(theirs.id), 10_000)).toBe(true);
          expect(await p.stop('SIGINT')).toEqual({ code: 0, signal: null });
          expect(p.stderr()).toMatch(/\ndetached\n$/);
          await expectNothingLeft(id);
        });
      } finally {
        await removeOther();
      }
      expect(queryXdp(iface)).toEqual([]);
    });
  });
});
