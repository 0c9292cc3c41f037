import { describe, expect, it } from 'vitest';
import { formatCounters, formatMac, parseArpTable, parseMac, routeStruct } from '../../src/lessons/xdp_redirect_map.js';

describe('xdp_redirect_map neighbours and routes', () => {
  it('reads the complete entries of /proc/net/arp', () => {
    const text = [
      'IP address       HW type     Flags       HW address            Mask     Device',
      '10.0.1.2         0x1         0x2         2a:1e:c7:ae:9e:25     *        lb0',
      '10.244.1.5       0x1         0x2         3a:02:62:14:04:5d     *        lb1',
      '10.244.1.9       0x1         0x0         00:00:00:00:00:00     *        lb1',
      '',
    ].join('\n');
    expect(parseArpTable(text)).toEqual([
      { ip: '10.0.1.2', mac: '2a:1e:c7:ae:9e:25', dev: 'lb0' },
      { ip: '10.244.1.5', mac: '3a:02:62:14:04:5d', dev: 'lb1' },
    ]);
  });
  it('parses and formats MACs; encodes struct fwd_route as the kernel reads it', () => {
    expect(formatMac(parseMac('0A:85:38:0f:91:5b'))).toBe('0a:85:38:0f:91:5b');
    expect(() => parseMac('0a:85:38')).toThrow("bad MAC address '0a:85:38'");
    const b = Buffer.alloc(16);
    routeStruct.encode({ port: 1, dmac: parseMac('02:00:00:00:00:02'), smac: parseMac('02:00:00:00:00:01') }, b);
    expect(b.toString('hex')).toBe('01000000' + '020000000002' + '020000000001');
  });
  it('formats a counter line', () => {
    expect(formatCounters('lb0', { rx_packets: 4, rx_bytes: 336, redirected: 3, passed: 1, tx_packets: 3, tx_bytes: 294 }))
      .toBe('lb0        rx 4 (336 B)  redirected 3  passed 1  tx 3 (294 B)');
  });
});
