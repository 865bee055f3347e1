/**
 * Worker body for {@linkcode QuantizePool} (formats/quant/pool.ts): quantises one chunk of
 * whole blocks per message and sends the bytes back (transferred, not copied).
 *
 * Message in: `{ id, type, data }` (type name, F32 chunk). Message out: `{ id, bytes }` or
 * `{ id, error }`.
 *
 * @module
 */
import { ggmlTypeByName, quantize } from "../quant.ts";

interface Job {
  id: number;
  type: string;
  data: Float32Array;
}

// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
scope.onmessage = (e: MessageEvent<Job>) => {
  const { id, type, data } = e.data;
  try {
    const bytes = quantize(ggmlTypeByName(type)!, data);
    scope.postMessage({ id, bytes }, [bytes.buffer]);
  } catch (err) {
    scope.postMessage({ id, error: (err as Error).message });
  }
};
