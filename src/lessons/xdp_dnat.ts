/**
 * xdp_dnat: the lesson's shared layouts and names. The structs of
 * bpf/xdp_dnat/xdp_dnat.h byte for byte (sharedLayouts, checked against the
 * object's BTF by test/layouts.test.ts), the map and program names, the
 * reply filter's fixed slot, and the reasons the programs count.
 *
 * The rest of the lesson's user side, one concern per module:
 * - src/lessons/xdp_dnat/pins.ts: where a running loader's maps are pinned;
 * - src/lessons/xdp_dnat/legacy_table.ts: services of the one-backend data
 *   plane (service_map + reverse_map), until the Maglev data plane replaces it;
 * - src/lessons/xdp_dnat/monitor.ts: the hit table the loader prints;
 * - src/lb/: the load balancer's service model, Maglev and ServiceTable.
 */
import { struct } from '../codec.js';
import type { SharedLayout } from './shared.js';

/** struct service_key: VIP and port in network order, protocol, zero pad. */
export const serviceKeyStruct = struct('service_key', { vip: 'be32', port: 'be16', proto: 'u8', pad: { pad: 1 } });
/** struct backend: address and port in network order, zero pad. */
export const backendStruct = struct('backend', { ip: 'be32', port: 'be16', pad: { pad: 2 } });
/** struct backend_key: a backend as the source of replies (reverse_map's key). */
export const backendKeyStruct = struct('backend_key', { ip: 'be32', port: 'be16', proto: 'u8', pad: { pad: 1 } });
/** struct service_counter: hits of one service (one per CPU). */
export const serviceCounterStruct = struct('service_counter', { packets: 'u64', bytes: 'u64' });

/** The structs shared with the kernel programs, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [
  { object: 'xdp_dnat', cName: 'service_key', codec: serviceKeyStruct },
  { object: 'xdp_dnat', cName: 'backend', codec: backendStruct },
  { object: 'xdp_dnat', cName: 'backend_key', codec: backendKeyStruct },
  { object: 'xdp_dnat', cName: 'service_counter', codec: serviceCounterStruct },
];

/** Map names in the object (and file names under the pin directory). */
export const MAPS = { services: 'service_map', reverse: 'reverse_map', hits: 'service_hits', stats: 'dnat_stats' } as const;
/** The programs: XDP forward path and TC egress return path. */
export const PROGRAMS = { forward: 'xdp_dnat', reply: 'tc_dnat_reply' } as const;
/**
 * The clsact handle and priority of the reply program's filter (with --tc
 * clsact): a fixed slot, so that a filter a SIGKILLed loader left behind is
 * found and removed by the next one (see attachTc's `slot`).
 */
export const REPLY_TC_SLOT = { handle: 0xd0a7, priority: 0xd0a7 } as const;
/** max_entries of service_map (reverse_map has twice as many: room to change every backend at once). */
export const MAX_SERVICES = 1024;

/** enum dnat_reason, in order: the index of each counter in dnat_stats. */
export const DNAT_REASONS = [
  'redirect', 'tx', 'pass_no_neigh', 'pass_not_fwd', 'pass_mtu', 'pass_ttl', 'drop_blackhole',
  'pass_miss', 'pass_not_ipv4', 'pass_malformed', 'pass_fragment', 'pass_other_proto', 'reply_rewritten',
] as const;
/** A reason name. */
export type DnatReason = typeof DNAT_REASONS[number];

/** Per-reason counters, summed over CPUs. */
export type DnatStats = Record<DnatReason, number>;
