/** Network interface lookup with clear errors. */
import { readdirSync } from 'node:fs';
import { ifIndexToName, ifNameToIndex } from './ffi/sys.js';
import { BpfError, Errno } from './errors.js';

/** An interface of this network namespace. */
export interface Interface { readonly name: string; readonly index: number }

/**
 * Resolves an interface name or ifindex in this network namespace.
 * Throws a BpfError (ENODEV) naming the interface and listing the ones that exist.
 */
export function resolveInterface(iface: string | number): Interface {
  if (typeof iface === 'number') {
    const name = ifIndexToName(iface);
    if (!name) throw new BpfError(`find interface ${iface}`, Errno.ENODEV, `no interface with ifindex ${iface}`);
    return { name, index: iface };
  }
  if (iface.length === 0 || iface.length > 15 || /[\s/]/.test(iface)) {
    throw new BpfError(`find interface '${iface}'`, Errno.ENODEV, 'not a valid interface name');
  }
  const index = ifNameToIndex(iface);
  if (index === 0) {
    let known = '';
    try { known = readdirSync('/sys/class/net').join(', '); } catch { /* no sysfs */ }
    throw new BpfError(`find interface ${iface}`, Errno.ENODEV, `no such interface${known ? ` (have: ${known})` : ''}`);
  }
  return { name: iface, index };
}
