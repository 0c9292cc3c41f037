#!/usr/bin/env node
// The `bpfts` command's launcher. In a checkout of the repository (the
// TypeScript sources are next to it) it runs them through tsx, so
// `sudo npx bpfts ...` works without a build and never runs a stale one;
// in an installed package (no sources) it runs the compiled dist/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src', 'cli', 'bpfts', 'main.ts');
const compiled = join(root, 'dist', 'cli', 'bpfts', 'main.js');

if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(source).href);
} else if (existsSync(compiled)) {
  await import(pathToFileURL(compiled).href);
} else {
  process.stderr.write(`bpfts: start: neither ${source} nor ${compiled} exists (ENOENT)\n`);
  process.exit(1);
}
