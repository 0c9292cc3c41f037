/**
 * `bpfts gen types <object.bpf.o>`: prints TypeScript for the structs,
 * unions and enums the object's maps and globals use (and those named with
 * --type, e.g. ring buffer records): struct() codec declarations and their
 * TS types (src/btf/gen.ts). Exit 0 ok, 1 the object has no BTF, 2 bad
 * usage (no such file, unknown --type).
 */
import { existsSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { Btf } from '../../btf/btf.js';
import { genTypes } from '../../btf/gen.js';
import { Output } from '../output.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, ...v.split(',').filter(Boolean)];
}

/** Adds `bpfts gen ...` to the program. */
export function registerGen(program: Command): void {
  const gen = program.command('gen').description('generate TypeScript from an object\'s BTF');
  gen.command('types <object>')
    .description('struct() codecs and TS types for every struct, union and enum the object\'s maps and globals use')
    .option('--type <name>', 'also generate this struct/union/enum (repeat, or comma-separated): ring buffer records, which no map names', collect, [])
    .option('--import-from <module>', 'module to import struct() from', 'libbpf-ts')
    .option('--bigint', '64-bit members as bigint (u64big) instead of number (u64, exact up to 2^53)', false)
    .action(async (path: string, opts: { type: string[]; importFrom: string; bigint: boolean }) => {
      const out = new Output(() => { /* reader gone */ });
      const fail = (code: number, msg: string) => { process.stderr.write(`bpfts: ${msg}\n`); process.exitCode = code; };
      if (!existsSync(path) || !statSync(path).isFile()) return fail(2, `gen types ${path}: no such file`);
      let btf: Btf;
      try {
        btf = Btf.fromFile(path);
      } catch (e) {
        return fail(1, `gen types ${path}: ${(e as Error).message.split('\n')[0]}`);
      }
      try {
        const r = genTypes(btf, { types: opts.type, importFrom: opts.importFrom, bigint: opts.bigint, source: basename(path) });
        for (const l of r.text.trimEnd().split('\n')) out.line(l);
        await out.flush();
      } catch (e) {
        fail(2, `gen types ${path}: ${(e as Error).message.split('\n')[0]}`);
      }
    });
}
