/** Wire figures of xdp_firewall (to come). */
import type { BenchRow } from './lib.js';

export async function wireRows(_quick: boolean): Promise<BenchRow[]> {
  return [];
}
