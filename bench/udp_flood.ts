/**
 * The wire benches' sender: bench/c/udp_flood.c (60-byte UDP frames, 64 on
 * the wire, through AF_PACKET with PACKET_QDISC_BYPASS and sendmmsg, one
 * CPU) run in the peer namespace of a lab pair towards the host end, for a
 * fixed time. Shared by xdp_firewall and xdp_sock.
 */
import { runNs, type PairLab } from '../src/lab/index.js';
import { buildC } from './lib.js';

/** What one flood did: frames sent, failed sendmmsg calls, how long it ran. */
export interface FloodResult {
  sent: number;
  errors: number;
  seconds: number;
}

/**
 * Floods `dstIp:port` from `srcIp` out of the peer end of `lab` (to the host
 * end's MAC) for `seconds`. Builds the sender when needed. Throws when it
 * cannot be built or fails.
 */
export async function udpFlood(lab: PairLab, srcIp: string, dstIp: string, port: number, seconds: number): Promise<FloodResult> {
  const bin = buildC('udp_flood');
  const { stdout } = await runNs(lab.ns, [bin, lab.peerIf, lab.hostMac, srcIp, dstIp, String(port), String(seconds)], { timeoutMs: (seconds + 20) * 1000 });
  return JSON.parse(stdout) as FloodResult;
}
