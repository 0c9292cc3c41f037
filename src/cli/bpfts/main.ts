#!/usr/bin/env node
/**
 * bpfts: a bpftool-like command on the library's own API. Exit status 0 ok,
 * 1 the operation failed, 2 bad usage; errors are one line on stderr.
 */
import { newCommand, parseCommand } from '../command.js';
import { registerMap } from './map.js';
import { registerGen } from './gen.js';

const program = newCommand('bpfts').description('inspect and change BPF maps, generate TypeScript from BTF');
registerMap(program);
registerGen(program);
const status = await parseCommand(program);
process.exit(status ?? (typeof process.exitCode === 'number' ? process.exitCode : 0));
