/** Network interface lookup with clear errors. */
import { ifIndexToName, ifNameToIndex, listInterfaces } from './ffi/sys.js';
import { BpfError, Errno } from './errors.js';

/** An interface of this network namespace. */
export interface Interface { readonly name: string; readonly index: number }

/**
 * Resolves an interface name or ifindex in this network namespace (the
 * calling thread's, as the kernel sees it: right under `nsenter --net` too).
 * Throws a BpfError (ENODEV) naming the interface and listing the ones of
 * this namespace. Any kernel.
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
    const list = listInterfaces();
    const known = 'errno' in list ? '' : list.map((i) => i.name).join(', ');
    throw new BpfError(`find interface ${iface}`, Errno.ENODEV, `no such interface${known ? ` (have: ${known})` : ''}`);
  }
  return { name: iface, index };
}
