/**
 * What each lesson module (src/lessons/<lesson>.ts) exports about the structs
 * its kernel side and user side share: the layout test checks every one
 * against the BTF of the compiled object.
 */
import type { StructCodec } from '../codec.js';

/** A struct declared in bpf/<lesson>/<lesson>.h and mirrored by a TS codec. */
export interface SharedLayout {
  /** Object name: bpf/build/<object>.bpf.o */
  object: string;
  /** The C struct's name (struct <cName>). */
  cName: string;
  /** The TS mirror; its field names are the C member names. */
  codec: StructCodec<unknown>;
}
