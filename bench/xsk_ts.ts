/**
 * The TS receiver of the xdp_sock figures, the counterpart of
 * bench/c/xsk_ref.c with the same setup: the library's XskSocket (UMEM of
 * 4,096 frames of 2,048 bytes, rings of 2,048, copy mode, need-wakeup,
 * queue 0) put in a pinned XSKMAP, served by the lesson's XskEcho (the fd
 * watched on Node's event loop, batches of 64; echo or count only).
 * Usage: tsx bench/xsk_ts.ts <ifname> <xskmap_pin> count|echo <seconds>
 *   stderr: "ready" once the socket is in the map
 *   stdout: {"received": n, "echoed": n, "not_echoed": n, "seconds": s, "stats": {...}} (as xsk_ref)
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { BpfMap, u32 } from '../src/index.js';
import { XskSocket } from '../src/xsk/index.js';
import { XskEcho } from '../src/lessons/xdp_sock.js';


const [ifname, pin, mode, secs] = process.argv.slice(2);
if (!ifname || !pin || (mode !== 'count' && mode !== 'echo') || !secs) {
  process.stderr.write('usage: xsk_ts <ifname> <xskmap_pin> count|echo <seconds>\n');
  process.exit(2);
}
const ifindex = Number(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8'));
const sock = XskSocket.open({ ifindex, queue: 0, mode: 'copy', umem: { frameCount: 4096, frameSize: 2048 }, rxSize: 2048, txSize: 2048, fillSize: 2048, completionSize: 2048 });
const map = BpfMap.openPinned(pin, u32, u32);
const echo = new XskEcho(sock, mode === 'count');
echo.start();
sock.setInMap(map);
const t0 = performance.now();
process.stderr.write('ready\n');
const tick = setInterval(() => echo.flush(), 1000);
let done = false;
const finish = () => {
  if (done) return;
  done = true;
  clearInterval(tick);
  const seconds = (performance.now() - t0) / 1000;
  for (let i = 0; i < 100 && echo.counts.tx > echo.counts.completed; i++) echo.flush();
  const s = sock.statistics();
  map.delete(0);
  map.close();
  sock.close();
  process.stdout.write(`${JSON.stringify({
    received: echo.counts.rx, echoed: mode === 'echo' ? echo.counts.completed : 0, not_echoed: mode === 'echo' ? echo.counts.notEchoed : 0, seconds,
    stats: { rx_dropped: s.rxDropped, rx_invalid_descs: s.rxInvalidDescs, tx_invalid_descs: s.txInvalidDescs, rx_ring_full: s.rxRingFull, rx_fill_ring_empty_descs: s.rxFillRingEmptyDescs, tx_ring_empty_descs: s.txRingEmptyDescs },
  })}\n`);
};
process.on('SIGINT', finish);
process.on('SIGTERM', finish);
setTimeout(finish, Number(secs) * 1000).unref();
