/**
 * The load balancer's service model (src/lb/model.ts): the text form
 * VIP:PORT/PROTO=IP:PORT[*WEIGHT],... both ways, and validation that
 * refuses bad input in one line.
 */
import { describe, expect, it } from 'vitest';
import { BpfError } from '../../src/errors.js';
import {
  checkService, describeService, formatService, parseBackend, parseService, parseServiceAddr, validateServices, type Service,
} from '../../src/lb/model.js';
import { LB_MAX_BACKENDS } from '../../src/lb/layout.js';

describe('load balancer services: text form', () => {
  it('parses one backend, several, weights, and none', () => {
    expect(parseService('10.96.0.10:80/tcp=10.244.1.5:8080')).toEqual({ vip: '10.96.0.10', port: 80, proto: 'tcp', backends: [{ ip: '10.244.1.5', port: 8080, weight: 1 }] });
    const s = parseService(' 10.96.0.11:53/UDP=10.244.1.6:5353*3, 10.244.1.7:5353 ,10.244.1.8:5353*0');
    expect(s).toEqual({
      vip: '10.96.0.11', port: 53, proto: 'udp',
      backends: [{ ip: '10.244.1.6', port: 5353, weight: 3 }, { ip: '10.244.1.7', port: 5353, weight: 1 }, { ip: '10.244.1.8', port: 5353, weight: 0 }],
    });
    expect(parseService('10.96.0.12:443/tcp=')).toEqual({ vip: '10.96.0.12', port: 443, proto: 'tcp', backends: [] });
    expect(parseServiceAddr('10.96.0.11:53/udp')).toEqual({ vip: '10.96.0.11', port: 53, proto: 'udp' });
    expect(parseBackend('10.244.1.5:8080*65535')).toEqual({ ip: '10.244.1.5', port: 8080, weight: 65535 });
  });

  it('formats what it parses, and back (canonical dotted quads)', () => {
    for (const t of ['10.96.0.10:80/tcp=10.244.1.5:8080', '10.96.0.11:53/udp=10.244.1.6:5353*3,10.244.1.7:5353,10.244.1.8:5353*0', '10.96.0.12:443/tcp=']) {
      expect(formatService(parseService(t))).toBe(t);
    }
    expect(formatService(parseService('010.096.0.010:80/TCP=10.244.001.5:8080*1'))).toBe('10.96.0.10:80/tcp=10.244.1.5:8080');
    expect(describeService(parseService('10.96.0.10:80/tcp=10.244.1.5:8080,10.244.1.6:8080*2'))).toBe('10.96.0.10:80/tcp → 10.244.1.5:8080, 10.244.1.6:8080*2');
    expect(describeService(parseService('10.96.0.10:80/tcp='))).toBe('10.96.0.10:80/tcp → (no backends)');
  });

  it('refuses bad text with one line naming what is wrong', () => {
    const bad: Array<[string, string]> = [
      ['10.96.0.300:80/tcp=10.244.1.5:8080', "service: bad IPv4 address '10.96.0.300'"],
      ['10.96.0.10:80/tcp=10.244.1:8080', "backend: bad IPv4 address '10.244.1'"],
      ['10.96.0.10:0/tcp=10.244.1.5:8080', 'service: port 0 is out of range (1-65535)'],
      ['10.96.0.10:80/tcp=10.244.1.5:65536', 'backend: port 65536 is out of range (1-65535)'],
      ['10.96.0.10:http/tcp=10.244.1.5:80', "service: port 'http' is not a number"],
      ['10.96.0.10:80/sctp=10.244.1.5:80', "service: unknown protocol 'sctp' (use tcp or udp)"],
      ['10.96.0.10:80/tcp', 'expected VIP:PORT/PROTO=IP:PORT[*WEIGHT],...'],
      ['10.96.0.10/tcp=10.244.1.5:80', 'expected VIP:PORT/PROTO'],
      ['10.96.0.10:80/tcp=10.244.1.5', "bad backend '10.244.1.5': expected IP:PORT or IP:PORT*WEIGHT"],
      ['10.96.0.10:80/tcp=10.244.1.5:80,', "bad backend '': expected IP:PORT"],
      ['10.96.0.10:80/tcp=10.244.1.5:80*', "backend 10.244.1.5:80: weight '' is not a number"],
      ['10.96.0.10:80/tcp=10.244.1.5:80*-1', "backend 10.244.1.5:80: weight '-1' is not a number"],
      ['10.96.0.10:80/tcp=10.244.1.5:80*65536', 'backend 10.244.1.5:80: weight 65536 is out of range (0-65535)'],
      ['10.96.0.10:80/tcp=10.244.1.5:80,10.244.1.5:80*2', 'service 10.96.0.10:80/tcp: backend 10.244.1.5:80 is listed twice'],
      ['224.0.0.1:80/tcp=10.244.1.5:80', 'service: 224.0.0.1 is a multicast address, not the address of one host'],
      ['10.96.0.10:80/tcp=0.1.2.3:80', 'backend: 0.1.2.3 is in 0.0.0.0/8 ("this network"), not the address of one host'],
      ['10.96.0.10:80/tcp=255.255.255.255:80', 'backend: 255.255.255.255 is the broadcast address'],
    ];
    for (const [text, msg] of bad) {
      let err: unknown;
      try { parseService(text); } catch (e) { err = e; }
      expect(err, text).toBeInstanceOf(Error);
      expect((err as Error).message, text).toContain(msg);
      expect((err as Error).message).not.toContain('\n');
    }
  });

  it('checks services given as objects: weights, counts, types', () => {
    const base: Service = { vip: '10.96.0.10', port: 80, proto: 'tcp', backends: [] };
    expect(checkService({ ...base, backends: [{ ip: '10.244.1.5', port: 80 }] }).backends[0].weight).toBe(1);
    expect(() => checkService({ ...base, backends: [{ ip: '10.244.1.5', port: 80, weight: 1.5 }] })).toThrow('service 10.96.0.10:80/tcp: backend 10.244.1.5:80: weight 1.5 is out of range (0-65535)');
    expect(() => checkService({ ...base, port: '80' as unknown as number })).toThrow('service: port 80 is out of range (1-65535)');
    expect(() => checkService({ ...base, backends: undefined as unknown as [] })).toThrow('service 10.96.0.10:80/tcp: no backend list');
    const many = Array.from({ length: LB_MAX_BACKENDS + 1 }, (_, i) => ({ ip: `10.244.${i >> 8}.${(i & 255) + 1 > 254 ? 254 : (i & 255) + 1}`, port: 1000 + i }));
    expect(checkService({ ...base, backends: many.slice(0, LB_MAX_BACKENDS) }).backends.length).toBe(LB_MAX_BACKENDS);
    expect(() => checkService({ ...base, backends: many })).toThrow(`service 10.96.0.10:80/tcp: ${LB_MAX_BACKENDS + 1} backends, at most ${LB_MAX_BACKENDS}`);
  });

  it('validates a list: no service twice, no backend that is a VIP', () => {
    const a = parseService('10.96.0.10:80/tcp=10.244.1.5:8080');
    const b = parseService('10.96.0.10:80/udp=10.244.1.5:8080');
    expect(validateServices([a, b]).map((p) => p.key)).toEqual(['10.96.0.10:80/tcp', '10.96.0.10:80/udp']);
    const twice = () => validateServices([a, parseService('10.96.0.10:80/tcp=10.244.1.6:8080')]);
    expect(twice).toThrow(BpfError);
    expect(twice).toThrow('check 2 services: service 10.96.0.10:80/tcp is listed twice (EINVAL)');
    expect(() => validateServices([a, parseService('10.96.0.11:80/tcp=10.96.0.10:80')])).toThrow('backend 10.96.0.10:80 of 10.96.0.11:80/tcp is a service address (VIP of 10.96.0.10:80/tcp)');
  });
});
