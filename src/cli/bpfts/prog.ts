/**
 * `bpfts prog list` / `bpfts prog show <id|name|pinned-path>`: the programs
 * loaded in the kernel, with where each is attached.
 */
import type { Command } from 'commander';
import { attachmentsByProgram, findPrograms, listLinks, listNet, listPrograms, type ProgramAttachment, type ProgramInfo } from '../../inspect/index.js';
import { out, parseId, printJson, requireRoot, withJson, type ListingOptions } from './common.js';

/** A program as `--json` prints it. */
export interface ProgramJson {
  id: number; type: string; name: string; tag: string;
  /** ISO 8601, UTC. */
  loadedAt: string;
  uid: number; mapIds: number[]; btfId: number; xlatedBytes: number; jitedBytes: number;
  attached: ProgramAttachment[];
}

function toJson(p: ProgramInfo, attached: ProgramAttachment[]): ProgramJson {
  return {
    id: p.id, type: p.type, name: p.name, tag: p.tag, loadedAt: p.loadedAt.toISOString(), uid: p.uid,
    mapIds: p.mapIds, btfId: p.btfId, xlatedBytes: p.xlatedBytes, jitedBytes: p.jitedBytes, attached,
  };
}

/** "2026-12-02 13:40:01" in local time. */
export function formatTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The text lines of one program: "<id>: <type>  name <name>  tag <tag>", then its details, indented. */
export function programLines(p: ProgramJson): string[] {
  const lines = [`${p.id}: ${p.type}  name ${p.name || '-'}  tag ${p.tag}`];
  lines.push(`\tloaded_at ${formatTime(new Date(p.loadedAt))}  uid ${p.uid}  xlated ${p.xlatedBytes}B  jited ${p.jitedBytes}B${p.btfId ? `  btf_id ${p.btfId}` : ''}`);
  if (p.mapIds.length) lines.push(`\tmap_ids ${p.mapIds.join(',')}`);
  for (const a of p.attached) lines.push(`\tattached ${a.type} ${a.target}${a.linkId ? ` (link ${a.linkId})` : ''}`);
  return lines;
}

function withAttachments(progs: ProgramInfo[]): ProgramJson[] {
  const where = attachmentsByProgram(listLinks(), listNet());
  return progs.map((p) => toJson(p, where.get(p.id) ?? []));
}

function print(progs: ProgramJson[], json: boolean | undefined, single: boolean): void {
  if (json) return printJson(single ? progs[0] : progs);
  for (const p of progs) for (const l of programLines(p)) out().line(l);
}

/** Adds `prog list` and `prog show`. */
export function registerProg(program: Command): void {
  const prog = program.command('prog').description('programs loaded in the kernel (any tool\'s), and where they are attached');
  withJson(prog.command('list').description('every loaded program: id, type, name, tag, load time, maps, attachments'))
    .action((o: ListingOptions) => {
      requireRoot('list progs');
      print(withAttachments(listPrograms()), o.json, false);
    });
  withJson(prog.command('show').description('one program (every program of that name)')
    .argument('<prog>', 'an id (42 or id:42), a name (name:X or X), or a path where it is pinned on bpffs'))
    .action((spec: string, o: ListingOptions) => {
      if (/^id:/.test(spec)) parseId(spec, 'program');
      requireRoot(`show prog ${spec}`);
      // --json: one object for an id or a path; an array for a name (several programs may share it)
      const one = /^(id:)?\d+$/.test(spec) || spec.startsWith('/') || spec.startsWith('pinned:');
      print(withAttachments(findPrograms(spec)), o.json, one);
    });
}
