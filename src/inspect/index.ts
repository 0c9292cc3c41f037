/**
 * Inspecting the system's BPF state, whoever loaded it (what bpftool's
 * prog, link and net commands show): the typed API under `bpfts`.
 */
export { listPrograms, programById, programInfoByFd, findPrograms, type ProgramInfo } from './programs.js';
export { listLinks, linkById, linkByPin, linkInfoByFd, type LinkDetails } from './links.js';
export { listNet, clsactFilters, type NetListing, type NetInterface, type NetXdp, type NetTc } from './net.js';
export { attachmentsByProgram, type ProgramAttachment } from './attachments.js';
export { inNetns, NETNS_RUN_DIR } from './netns.js';
export { listMaps } from './maps.js';
