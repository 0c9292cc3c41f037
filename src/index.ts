/**
 * libbpf-ts: eBPF from TypeScript over the system's libbpf.
 * The typed API: objects, programs, maps, links, codecs, errors.
 */
export { BpfObject, type OpenOptions, type ObjectMapInfo, type PinnedMapInfo } from './object.js';
export { AttachType, LinkType, progTypeName, attachTypeName, linkTypeName, type ProgTypeName, type MapTypeName, type AttachTypeName } from './kinds.js';
export type { GlobalValue } from './varset.js';
export { IterLink, attachIter, type IterOptions } from './attach/iter.js';
export { attachUsdt, type UsdtOptions } from './attach/usdt.js';
export { Program, ProgType, assertProgType, hookOf, BPF_F_TEST_XDP_LIVE_FRAMES, type TestRunInput, type TestRunResult } from './program.js';
export { BpfMap, PerCpuMap, MapType, mapTypeName, isPerCpuMapType, possibleCpus, mapInfoByFd, mapInUse, pinnedMapId, sumPerCpu, type UpdateFlag, type MapInfoView } from './map.js';
export { LessonPins, PIN_BASE, netnsInode, type Pinnable, type FindPinsOptions } from './pins.js';
export { ensureBpffs, isBpffs } from './bpffs.js';
export { Link, type Attachment, type LinkInfo } from './link.js';
export { attachXdp, queryXdp, programNameById, XdpAction, xdpActionName, XDP_MODES, type XdpMode, type XdpAttachOptions, type XdpAttached } from './xdp.js';
export { attachTc, TC_MODES, type TcDirection, type TcMode, type TcAttachOptions } from './tc.js';
export { resolveInterface, type Interface } from './netif.js';
export { probeTcx, probeXdpLink, probeKprobes, probeFentry, probeBtf, kernelHasFunction, VMLINUX_BTF } from './features.js';
export type { KprobeOptions, UprobeOptions } from './attach/tracing.js';
export type { PerfEventOptions, PerfEventKind } from './attach/perf_event.js';
export {
  PacketSocket, attachSocketFilter, type Packet, type PacketDirection, type PacketSocketOptions, type PacketSocketStats, type SocketFilterProgram,
} from './attach/socket.js';
export { Cgroup, cgroup2Root, cgroup2Mounts, cgroupOf, isCgroup2 } from './cgroup.js';
export { BpfError, VerifierError, NEEDS_PRIVILEGE } from './errors.js';
export * from './codec.js';
export { libbpfVersion, NativeLoadError } from './ffi/native.js';
export { setLibbpfLogger, type LibbpfLogger, type LibbpfLogLevel } from './ffi/log.js';
export { errnoName, Errno } from './ffi/errno.js';
export { isRoot } from './ffi/sys.js';
export { RingBufReader, type RingBufReaderOptions, type RingBufStats, type WaitOptions, type ConsumeOptions, type RawRecordHandler, type RingViews } from './ringbuf/reader.js';
export * from './xsk/index.js';
export { PerfBufReader, type PerfBufReaderOptions, type PerfBufStats, type PerfWaitOptions, type PerfConsumeOptions } from './perfbuf/reader.js';
export * from './btf/index.js';
export * from './inspect/index.js';
