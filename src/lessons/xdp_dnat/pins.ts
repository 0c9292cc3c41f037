/**
 * Where a running xdp_dnat loader pins its maps, and how the services
 * script finds them: PIN_ROOT/<iface>-<netns inode>, marked by the
 * services map (see src/pins.ts).
 */
import { LessonPins, type FindPinsOptions } from '../../pins.js';
import { MAPS } from '../xdp_dnat.js';

/** The pin directories of xdp_dnat loaders: PIN_ROOT/<iface>-<netns inode>, marked by the services map. */
export const PINS = new LessonPins('xdp_dnat', MAPS.services, 'services');

/** Where a loader pins its maps by default: /sys/fs/bpf/libbpf-ts/xdp_dnat. */
export const PIN_ROOT = PINS.root;

/** The default pin directory of a loader on `ifname` in this network namespace: PIN_ROOT/<ifname>-<netns inode>. */
export function defaultPinDir(ifname: string): string {
  return PINS.defaultDir(ifname);
}

/**
 * Finds the pin directory of the running loader (see LessonPins.find):
 * `pinDir` if given, else the default one of `iface` in this network
 * namespace, else the only one. Throws a BpfError (ENOENT, EEXIST) with a
 * one-line hint.
 */
export function findPinDir(opts: FindPinsOptions = {}): string {
  return PINS.find(opts);
}
