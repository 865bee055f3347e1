/**
 * A module worker for tests/browser_test.ts (bundled with `deno bundle --platform browser`):
 * runtime/threads.ts's pool, by itself, in a browser worker (a page may import it too, for
 * {@linkcode marks} on its main thread). On a message `threads` it posts what these gave,
 * each an array of the marks or one error line:
 *
 * - `sync`: `startThreadPool` with 2 threads, straight away (its workers cannot have
 *   started: the one-line refusal);
 * - `async`: `createThreadPool` with `threads` threads, then one step of `mark`, which each
 *   thread runs as `memory[1024 + 4·tid] = tid + 1`: `[1, 2, ...]` when every thread ran.
 */
import { WasmFunc } from "../codegen/wasm_asm.ts";
import { assembleModule } from "../codegen/wasm_assemble.ts";
import { createThreadPool, startThreadPool } from "../runtime/threads.ts";

const f = new WasmFunc("mark", [
  ["tid", "i32"],
  ["n", "i32"],
  ...Array.from({ length: 8 }, (_, i) => [`a${i}`, "i32"] as [string, "i32"]),
]);
f.get("tid").i32(4).op("i32.mul").get("tid").i32(1).op("i32.add").mem("i32.store", 1024);
const module = new WebAssembly.Module(
  assembleModule([f], [{ minPages: 1, maxPages: 1, shared: true }]),
);

/**
 * The marks of `threads` threads after one step, or the error's message.
 *
 * @param start `sync`: startThreadPool; `async`: createThreadPool.
 * @param threads Threads of the pool.
 * @returns The marks, or the error's message.
 */
export async function marks(start: "sync" | "async", threads: number): Promise<number[] | string> {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  try {
    const pool = start === "sync"
      ? startThreadPool(module, memory, 0, ["mark"], { threads })
      : await createThreadPool(module, memory, 0, ["mark"], { threads });
    pool.run("mark");
    pool.close();
    return [...new Int32Array(memory.buffer, 1024, threads)];
  } catch (e) {
    return (e as Error).message;
  }
}

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<number>) => void) | null;
  postMessage(m: unknown): void;
};
scope.onmessage = async (e) => {
  scope.postMessage({ sync: await marks("sync", 2), async: await marks("async", e.data) });
};
