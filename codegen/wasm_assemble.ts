/**
 * Assembling a WebAssembly module from {@linkcode WasmFunc}s (`wasm_asm.ts`): the sections of
 * the WebAssembly Core Specification 2.0, chapter 5 "Binary Format" — 1 type, 2 import
 * (memories, with the threads proposal's shared flag, memory64's i64 flag and multi-memory,
 * and functions from `env`), 3 function, 7 export, 10 code, and the custom "name" section.
 *
 * @module
 */
import { uleb, utf8, VAL_TYPE, type ValType, type WasmFunc } from "./wasm_asm.ts";

/** One imported memory of a module (`env.memory`, `env.memory1`, ...). */
export interface MemoryImport {
  /** Import name (default `memory` for index 0, `memoryN` after). */
  name?: string;
  /** Minimum size in 64 KiB pages. */
  minPages: number;
  /** Maximum size in pages (required for a shared memory). */
  maxPages?: number;
  /** A shared memory (threads): `new WebAssembly.Memory({ shared: true, ... })`. */
  shared?: boolean;
  /** 64-bit addresses (memory64): `new WebAssembly.Memory({ address: "i64", ... })`. */
  memory64?: boolean;
}

/**
 * One imported function (`env.<name>`): called like a module function by name; imported
 * functions take the first function indices (WebAssembly Core Specification 2.0 §2.5.1).
 */
export interface FunctionImport {
  /** Import (and call) name, e.g. `cos`. */
  name: string;
  /** Parameter types. */
  params: ValType[];
  /** Result types. */
  results: ValType[];
}

/** The arrays one after another (a loop of pushes: spreading 100k-element arrays is slow). */
function concat(...parts: ArrayLike<number>[]): number[] {
  const out: number[] = [];
  for (const p of parts) for (let i = 0; i < p.length; i++) out.push(p[i]);
  return out;
}

const section = (id: number, content: number[]) => concat([id], uleb(content.length), content);

/** A section holding a vector of byte arrays, written into one exact-size array. */
function vecSection(id: number, items: Uint8Array[]): Uint8Array {
  const count = uleb(items.length);
  const size = count.length + items.reduce((a, x) => a + x.length, 0);
  const head = [id, ...uleb(size), ...count];
  const out = new Uint8Array(head.length - count.length + size);
  out.set(head, 0);
  let at = head.length;
  for (const x of items) {
    out.set(x, at);
    at += x.length;
  }
  return out;
}

/** The import name of memory `i`. */
const memoryName = (m: MemoryImport, i: number) => m.name ?? (i === 0 ? "memory" : `memory${i}`);

/**
 * WAT text of a memory import: `(import "env" "memory" (memory i64 1 100 shared))`.
 *
 * @param m The memory.
 * @param i Its index.
 * @returns One line.
 */
export function memoryImportText(m: MemoryImport, i = 0): string {
  const lim = `${m.minPages}${m.maxPages !== undefined ? ` ${m.maxPages}` : ""}`;
  return `(import "env" "${memoryName(m, i)}" (memory ${m.memory64 ? "i64 " : ""}${lim}${
    m.shared ? " shared" : ""
  }))`;
}

/**
 * Assembles a module that imports its memories from `env` and exports every exported
 * function under its name (calls between the functions are resolved by name).
 *
 * @param funcs The functions, in index order.
 * @param memory Minimum pages of one plain imported `env.memory`, or the memories.
 * @param imported Functions imported from `env` (indices before `funcs`), callable by name.
 * @returns The module bytes (valid input for `new WebAssembly.Module`).
 * @throws {Error} when a shared memory has no maximum or a call names no function.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assembleModule } from "./wasm_assemble.ts";
 * import { WasmFunc } from "./wasm_asm.ts";
 * const f = new WasmFunc("one", [], ["i32"]);
 * f.i32(1);
 * const m = new WebAssembly.Module(assembleModule([f], 1));
 * assert.deepEqual(WebAssembly.Module.exports(m), [{ name: "one", kind: "function" }]);
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * const one = new WebAssembly.Instance(m, { env: { memory } }).exports.one as () => number;
 * assert.equal(one(), 1);
 * ```
 */
export function assembleModule(
  funcs: WasmFunc[],
  memory: number | MemoryImport[],
  imported: FunctionImport[] = [],
): Uint8Array<ArrayBuffer> {
  const mems: MemoryImport[] = typeof memory === "number" ? [{ minPages: memory }] : memory;
  const vec = (items: number[][]) => concat(uleb(items.length), ...items);
  const nImp = imported.length;
  const index = new Map([
    ...imported.map((f, i) => [f.name, i] as const),
    ...funcs.map((f, i) => [f.name, nImp + i] as const),
  ]);
  const typeOf = (params: ValType[], results: ValType[]) => [
    0x60,
    ...uleb(params.length),
    ...params.map((t) => VAL_TYPE[t]),
    ...uleb(results.length),
    ...results.map((t) => VAL_TYPE[t]),
  ];
  const importedFuncs = imported.map((f, i) => [
    ...utf8("env"),
    ...utf8(f.name),
    0x00,
    ...uleb(funcs.length + i),
  ]);
  const funcIndex = (n: string) => {
    const i = index.get(n);
    if (i === undefined) throw new Error(`wasm_asm: call to unknown function $${n}`);
    return i;
  };
  const imports = mems.map((m, i) => {
    if (m.shared && m.maxPages === undefined) {
      throw new Error(`wasm_asm: shared memory ${memoryName(m, i)} needs maxPages`);
    }
    const flags = (m.maxPages !== undefined ? 1 : 0) | (m.shared ? 2 : 0) | (m.memory64 ? 4 : 0);
    return [
      ...utf8("env"),
      ...utf8(memoryName(m, i)),
      0x02,
      flags,
      ...uleb(m.minPages),
      ...(m.maxPages !== undefined ? uleb(m.maxPages) : []),
    ];
  });
  const exported = funcs.map((f, i) => [f, nImp + i] as const).filter(([f]) => f.exported);
  const parts = [
    [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    section(
      1,
      vec([
        ...funcs.map((f) => f.typeBytes()),
        ...imported.map((f) => typeOf(f.params, f.results)),
      ]),
    ),
    section(2, vec([...importedFuncs, ...imports])),
    section(3, vec(funcs.map((_, i) => uleb(i)))),
    section(7, vec(exported.map(([f, i]) => [...utf8(f.name), 0x00, ...uleb(i)]))),
    vecSection(10, funcs.map((f) => f.encodeBytes(funcIndex))),
    // The "name" custom section (Core Specification 2.0 §7.4.2, function names): profiles
    // and stack traces show `matvec_q8_0_768x768`, not `wasm-function[15]`.
    section(0, [
      ...utf8("name"),
      1,
      ...(() => {
        const names = vec([
          ...imported.map((f, i) => [...uleb(i), ...utf8(f.name)]),
          ...funcs.map((f, i) => [...uleb(nImp + i), ...utf8(f.name)]),
        ]);
        return concat(uleb(names.length), names);
      })(),
    ]),
  ];
  const bytes = new Uint8Array(parts.reduce((a: number, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return bytes;
}
