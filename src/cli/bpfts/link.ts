/** `bpfts link list` / `bpfts link show <id|pinned-path>`: the kernel's bpf_links. */
import type { Command } from 'commander';
import { linkById, linkByPin, listLinks, programById, type LinkDetails } from '../../inspect/index.js';
import { out, parseId, printJson, requireRoot, withJson, type ListingOptions } from './common.js';

/** A link as `--json` prints it: the kernel's fields and the program's name. */
export type LinkJson = LinkDetails & { progName: string };

function progName(id: number): string {
  try { return programById(id).name; } catch { return ''; }
}

/** "<id>: <type>  prog <prog id> <name>  <target>". */
export function linkLine(l: LinkJson): string {
  return `${l.id}: ${l.type}  prog ${l.progId}${l.progName ? ` ${l.progName}` : ''}  ${l.target}`;
}

function print(links: LinkDetails[], json: boolean | undefined, single: boolean): void {
  const rows: LinkJson[] = links.map((l) => ({ ...l, progName: progName(l.progId) }));
  if (json) return printJson(single ? rows[0] : rows);
  for (const l of rows) out().line(linkLine(l));
}

/** Adds `link list` and `link show`. */
export function registerLink(program: Command): void {
  const link = program.command('link').description('bpf_links: which program is attached where (interfaces, tracepoints, cgroups...)');
  withJson(link.command('list').description('every bpf_link: id, type, program, target'))
    .action((o: ListingOptions) => {
      requireRoot('list links');
      print(listLinks(), o.json, false);
    });
  withJson(link.command('show').description('one link').argument('<link>', 'an id (7 or id:7) or the path where it is pinned'))
    .action((spec: string, o: ListingOptions) => {
      const byPath = spec.startsWith('/');
      const id = byPath ? 0 : parseId(spec, 'link');
      requireRoot(`show link ${spec}`);
      print([byPath ? linkByPin(spec) : linkById(id)], o.json, true);
    });
}
