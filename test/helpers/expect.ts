/** Assertions shared by the test files. */
import { expect } from 'vitest';
import { BpfError } from '../../src/index.js';

/** Calls `fn`, expects it to throw a BpfError with exactly this message (or matching it), and returns the error. */
export function throwsBpf(fn: () => unknown, message: string | RegExp): BpfError {
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(BpfError);
  if (typeof message === 'string') expect((err as Error).message).toBe(message);
  else expect((err as Error).message).toMatch(message);
  return err as BpfError;
}
