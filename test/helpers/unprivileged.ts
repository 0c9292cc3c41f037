/**
 * Run without privileges (e.g. under `unshare --user`) by test/object.test.ts:
 * loads the object given as argument and creates a map through the library,
 * and prints each error message as one JSON line.
 */
import { BpfMap, BpfObject, MapType, u32 } from '../../src/index.js';

const attempts: Array<[string, () => unknown]> = [
  ['load', () => BpfObject.load(process.argv[2]).close()],
  ['create', () => BpfMap.create({ type: MapType.HASH, name: 'probe', maxEntries: 1 }, u32, u32).close()],
];
for (const [what, fn] of attempts) {
  try {
    fn();
    console.log(JSON.stringify({ what, ok: true }));
  } catch (e) {
    console.log(JSON.stringify({ what, name: (e as Error).name, message: (e as Error).message }));
  }
}
