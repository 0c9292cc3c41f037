/**
 * The npm package: `npm pack` builds a tarball (prepack compiles src/ to
 * dist/ with .d.ts), a fresh project installs it, and there plain `node`
 * imports the library, `tsc --noEmit` type-checks against its declarations,
 * and `npx bpfts --help` runs. Needs no kernel privileges; the install uses
 * npm's cache (offline when the cache can answer, else preferring it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { REPO_ROOT } from '../src/cli/build.js';

function sh(cmd: string, args: string[], cwd: string) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

it('npm pack: a tarball another project installs, imports under plain node, type-checks, and runs bpfts from', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'libbpf-ts-pack-'));
  try {
    const pack = sh('npm', ['pack', '--pack-destination', tmp], REPO_ROOT);
    expect(pack.stderr.match(/npm error.*/g) ?? []).toEqual([]);
    expect(pack.code).toBe(0);
    const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'))!;
    const files = sh('tar', ['tzf', join(tmp, tgz)], tmp).stdout.split('\n');
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/bpfts/main.js', 'bin/bpfts.js', 'bpf/Makefile', 'bpf/include/common.h', 'bpf/xdp_firewall/xdp_firewall.bpf.c', 'bpf/xdp_firewall/README.md']) {
      expect(files).toContain(`package/${f}`);
    }
    // no TypeScript sources, tests, build products or test-only programs
    expect(files.filter((f) => /^package\/(src|test|scripts|bpf\/build|bpf\/testdata)\//.test(f))).toEqual([]);

    const proj = join(tmp, 'consumer');
    mkdirSync(proj);
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    let inst = sh('npm', ['install', '--offline', '--no-audit', '--no-fund', join(tmp, tgz)], proj);
    // npm ci fills the cache with tarballs but not with the registry's package documents an install by range needs
    if (inst.code !== 0 && /ENOTCACHED/.test(inst.stderr)) inst = sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(tmp, tgz)], proj);
    expect(inst.stderr.match(/npm error.*/g) ?? []).toEqual([]);
    expect(inst.code).toBe(0);

    writeFileSync(join(proj, 'use.mjs'), "import { BpfObject, Program, libbpfVersion, u32 } from 'libbpf-ts';\nconsole.log(typeof BpfObject.load, typeof Program, libbpfVersion.major >= 1, u32.size);\n");
    const run = sh(process.execPath, ['use.mjs'], proj);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('function function true 4\n');

    writeFileSync(join(proj, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: [] }, include: ['*.ts'] }));
    writeFileSync(join(proj, 'ok.ts'), "import { BpfObject, type Program, BpfError } from 'libbpf-ts';\nexport function first(path: string): Program { const o: BpfObject = BpfObject.open(path); return o.program(); }\nexport const isErr = (e: unknown) => e instanceof BpfError && e.errno > 0;\n");
    const tsc = join(REPO_ROOT, 'node_modules', '.bin', 'tsc');
    const good = sh(tsc, ['-p', '.'], proj);
    expect(good.stdout + good.stderr).toBe('');
    expect(good.code).toBe(0);
    // The declarations are real types, not `any`: a misuse is caught.
    writeFileSync(join(proj, 'bad.ts'), "import { BpfObject } from 'libbpf-ts';\nexport const n: number = BpfObject.open('x.o');\n");
    const bad = sh(tsc, ['-p', '.'], proj);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toMatch(/bad\.ts.*TS2322: Type 'BpfObject' is not assignable to type 'number'/);

    const help = sh('npx', ['bpfts', '--help'], proj);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: bpfts \[options\] \[command\]/);
    expect(help.stdout).toMatch(/\n {2}prog /);
    // The lessons come with it: their loaders compiled (listed by `bpfts run --help`), their C sources buildable in place.
    const runHelp = sh('npx', ['bpfts', 'run', '--help'], proj);
    expect(runHelp.code).toBe(0);
    expect(runHelp.stdout).toMatch(/\n {2}xdp_firewall +count packets per IPv4 source/);
    const pkgBpf = join(proj, 'node_modules', 'libbpf-ts', 'bpf');
    const make = sh('make', ['-s', '-C', pkgBpf, 'packet_counter'], proj);
    expect(make.stderr).toBe('');
    expect(make.code).toBe(0);
    expect(existsSync(join(pkgBpf, 'build', 'packet_counter.bpf.o'))).toBe(true);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}, 300_000);
