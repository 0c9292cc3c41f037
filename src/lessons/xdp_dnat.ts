/**
 * xdp_dnat: the lesson's shared layouts and names. The structs of
 * bpf/xdp_dnat/xdp_dnat.h byte for byte (sharedLayouts: the load balancer
 * contract's structs from src/lb/layout.ts and the data plane's own from
 * src/lb/dataplane.ts, checked against the object's BTF by
 * test/layouts.test.ts), the map and program names, the reply filter's
 * fixed slot, and the reasons the programs count.
 *
 * The rest of the lesson's user side, one concern per module:
 * - src/lessons/xdp_dnat/pins.ts: where a running loader's maps are pinned;
 * - src/lessons/xdp_dnat/monitor.ts: the hit table the loader prints;
 * - src/lb/: the load balancer's service model, Maglev, ServiceTable, and
 *   the data plane's maps, sizing and restart lifecycle (dataplane.ts).
 */
import type { SharedLayout } from './shared.js';
import { DP_MAPS, LB_PROGRAMS, dataPlaneLayouts, type DnatReason } from '../lb/dataplane.js';
import type { Service } from '../lb/model.js';

export { serviceKeyStruct, serviceInfoStruct, backendStruct, serviceCounterStruct } from '../lb/layout.js';

/** The structs shared with the kernel programs, checked against the object's BTF by test/layouts.test.ts (lbSharedLayouts included). */
export const sharedLayouts: SharedLayout[] = dataPlaneLayouts;

/** Map names in the object (and file names under the pin directory). */
export const MAPS = DP_MAPS;
/** The programs: XDP forward path and TC egress return path. */
export const PROGRAMS = LB_PROGRAMS;
/**
 * The clsact handle and priority of the reply program's filter (with --tc
 * clsact): a fixed slot, so that a filter a SIGKILLed loader left behind is
 * found and removed by the next one (see attachTc's `slot`).
 */
export const REPLY_TC_SLOT = { handle: 0xd0a7, priority: 0xd0a7 } as const;

/** The lesson's default service (the loader's when no --service is given). */
export const DEFAULT_SERVICE: Service = { vip: '10.96.0.10', port: 80, proto: 'tcp', backends: [{ ip: '10.244.1.5', port: 8080, weight: 1 }] };

export { DNAT_REASONS, type DnatReason } from '../lb/dataplane.js';

/** Per-reason counters, summed over CPUs. */
export type DnatStats = Record<DnatReason, number>;
