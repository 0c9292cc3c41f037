/** `bpfts net list [--netns NAME]`: programs on the network interfaces' XDP and tc hooks. */
import type { Command } from 'commander';
import { listNet, type NetListing } from '../../inspect/index.js';
import { out, printJson, requireRoot, withJson } from './common.js';

/** The text lines of a listing: an "xdp:" and a "tc:" section, as bpftool net shows them. */
export function netLines(n: NetListing): string[] {
  const lines = [`xdp:${n.netns ? `  (netns ${n.netns})` : ''}`];
  for (const i of n.interfaces) {
    for (const x of i.xdp) lines.push(`${i.ifname}(${i.ifindex}) ${x.mode} id ${x.id} name ${x.name || '-'}${x.linkId ? ` link ${x.linkId}` : ''}`);
  }
  lines.push('', 'tc:');
  for (const i of n.interfaces) {
    for (const t of i.tc) {
      const how = t.kind === 'tcx' ? `tcx${t.linkId ? ` link ${t.linkId}` : ''}` : `clsact handle ${t.handle} prio ${t.priority}${t.directAction ? ' direct-action' : ''}`;
      lines.push(`${i.ifname}(${i.ifindex}) ${t.hook} ${how} id ${t.id} name ${t.name || '-'}`);
    }
  }
  return lines;
}

/** Adds `net list`. */
export function registerNet(program: Command): void {
  const net = program.command('net').description('programs attached to network interfaces (XDP, TCX, clsact)');
  withJson(net.command('list').description('XDP programs per interface (mode, id, name) and TC programs (TCX links, clsact filters)')
    .option('--netns <name>', 'look in this network namespace (a name under /run/netns) instead of the current one'))
    .action((o: { json?: boolean; netns?: string }) => {
      requireRoot('list net');
      const n = listNet(o.netns);
      if (o.json) printJson(n);
      else for (const l of netLines(n)) out().line(l);
    });
}
