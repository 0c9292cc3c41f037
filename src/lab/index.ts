/**
 * The lab: throwaway network namespaces and veth pairs (./topology.ts), the
 * commands they are built with (./netns.ts), and real traffic inside them
 * (./traffic.ts). For tests, the demo, the benchmarks and scripts/lab.ts.
 */
export {
  DEFAULT_PREFIX, checkTag, cleanup, cleanupStale, dnatLab, labPrefix, listLabs, pairLab,
  ULA_PREFIX, type DnatLab, type LabInfo, type LabOptions, type PairLab, type PairLabOptions,
} from './topology.js';
export { CommandError, run, runNs, type RunOptions } from './netns.js';
export {
  allowTrafficFrom, holdTcpConnections, listenUdp, ping, ping6, sendTcpConnect, sendUdp, startBackendServers, tcpConnect, tcpExchange, udpExchange,
  type BackendServers, type HeldConnections, type TcpResult, type UdpListener, type UdpReceived, type UdpResult,
} from './traffic.js';
