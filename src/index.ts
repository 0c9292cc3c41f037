/**
 * libbpf-ts: eBPF from TypeScript over the system's libbpf.
 * The typed API: objects, programs, maps, links, codecs, errors.
 */
export { BpfObject, type OpenOptions, type ObjectMapInfo } from './object.js';
export { Program, ProgType, BPF_F_TEST_XDP_LIVE_FRAMES, type TestRunInput, type TestRunResult } from './program.js';
export { BpfMap, PerCpuMap, MapType, mapTypeName, possibleCpus, mapInfoByFd, mapInUse, pinnedMapId, sumPerCpu, type UpdateFlag, type MapInfoView } from './map.js';
export { LessonPins, PIN_BASE, netnsInode, type Pinnable, type FindPinsOptions } from './pins.js';
export { ensureBpffs, isBpffs } from './bpffs.js';
export { Link, type Attachment, type LinkInfo } from './link.js';
export { attachXdp, queryXdp, programNameById, XdpAction, xdpActionName, XDP_MODES, type XdpMode, type XdpAttachOptions, type XdpAttached } from './xdp.js';
export { attachTc, TC_MODES, type TcDirection, type TcMode, type TcAttachOptions } from './tc.js';
export { resolveInterface, type Interface } from './netif.js';
export { probeTcx, probeXdpLink, probeKprobes, probeFentry, probeBtf, kernelHasFunction, VMLINUX_BTF } from './features.js';
export type { KprobeOptions, UprobeOptions } from './attach/tracing.js';
export { BpfError, VerifierError, NEEDS_PRIVILEGE } from './errors.js';
export * from './codec.js';
export { libbpfVersion, NativeLoadError } from './ffi/native.js';
export { setLibbpfLogger, type LibbpfLogger, type LibbpfLogLevel } from './ffi/log.js';
export { errnoName, Errno } from './ffi/errno.js';
export { isRoot } from './ffi/sys.js';
export { RingBufReader, type RingBufReaderOptions, type RingBufStats, type WaitOptions, type ConsumeOptions, type RawRecordHandler, type RingViews } from './ringbuf/reader.js';
export * from './xsk/index.js';
export * from './inspect/index.js';
