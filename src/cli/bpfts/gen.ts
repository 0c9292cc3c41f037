/** `bpfts gen`: TypeScript from an object's BTF (src/btf/gen.ts). */
import type { Command } from 'commander';

/** Adds `bpfts gen ...` to the program. */
export function registerGen(program: Command): void {
  program.command('gen').description('generate TypeScript from BTF');
}
