/**
 * Interface lookup in the caller's network namespace: under `nsenter --net`
 * (which keeps the root namespace's /sys mounted), an unknown interface must
 * list the interfaces of the namespace the process is in, as the kernel
 * reports them, not the ones of the namespace sysfs shows.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../src/cli/build.js';
import { resolveInterface } from '../src/index.js';
import { kernelTests } from './helpers/kernel.js';

const NS = 'lbts-netif';
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });

/** Runs resolveInterface(name) in a node process started under `prefix`, and returns its output. */
function resolveUnder(prefix: string[], name: string) {
  const code = `const { resolveInterface } = await import(${JSON.stringify(`${REPO_ROOT}/src/netif.ts`)});
try { console.log(JSON.stringify(resolveInterface(${JSON.stringify(name)}))); } catch (e) { console.log(e.message); }`;
  return spawnSync(prefix[0], [...prefix.slice(1), process.execPath, '--import', 'tsx', '--input-type=module', '-e', code], { cwd: REPO_ROOT, encoding: 'utf8' });
}

describe.skipIf(!kernelTests())('interfaces of the current network namespace', () => {
  beforeAll(() => {
    spawnSync('ip', ['netns', 'del', NS]);
    ip('netns', 'add', NS);
    ip('-n', NS, 'link', 'add', 'nifa', 'type', 'veth', 'peer', 'name', 'nifb');
  });
  afterAll(() => {
    spawnSync('ip', ['netns', 'del', NS]);
  });

  for (const [how, prefix] of [['nsenter --net', ['nsenter', `--net=/run/netns/${NS}`]], ['ip netns exec', ['ip', 'netns', 'exec', NS]]] as const) {
    it(`under ${how}, lists that namespace's interfaces only`, () => {
      const r = resolveUnder([...prefix], 'nosuch0');
      expect(r.stderr).toBe('');
      const m = /^find interface nosuch0: no such interface \(have: ([^()]*)\) \(ENODEV\)\n$/.exec(r.stdout);
      expect(m, r.stdout).not.toBeNull();
      expect(m![1].split(', ').sort()).toEqual(['lo', 'nifa', 'nifb']);
      const found = resolveUnder([...prefix], 'nifa');
      expect(JSON.parse(found.stdout)).toEqual({ name: 'nifa', index: expect.any(Number) });
    });
  }

  it('in this namespace, lists its interfaces (lo first), not the test namespace\'s', () => {
    let msg = '';
    try { resolveInterface('nosuch0'); } catch (e) { msg = (e as Error).message; }
    expect(msg).toMatch(/^find interface nosuch0: no such interface \(have: lo(, [^,()\s]+)*\) \(ENODEV\)$/);
    expect(msg).not.toMatch(/\bnifa\b/);
  });
});
