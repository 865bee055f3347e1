/**
 * A tiny WebAssembly binary assembler: just the instructions the SIMD kernels of
 * `emit_wasm.ts` need (i32 arithmetic, f32 and v128 loads/stores, f32x4 arithmetic,
 * structured control flow), written so that every instruction also produces one line of
 * WAT-like text. The text is what `emitWasmListing` shows; the bytes are what runs.
 *
 * Encoding follows the WebAssembly Core Specification 2.0, chapter 5 "Binary Format"
 * (LEB128 integers, sections 1 type, 2 import, 3 function, 7 export, 10 code) and the
 * fixed-width SIMD proposal (prefix `0xfd`, LEB128 opcode).
 *
 * @module
 */

/** Value types used by the kernels. */
export type ValType = "i32" | "f32" | "v128";

const VAL_TYPE: Record<ValType, number> = { i32: 0x7f, f32: 0x7d, v128: 0x7b };

/**
 * Unsigned LEB128 encoding of a non-negative integer.
 *
 * @param n Integer in `[0, 2^32)`.
 * @returns The bytes.
 * @throws {RangeError} for a negative or non-integer `n`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { uleb } from "./wasm_asm.ts";
 * assert.deepEqual(uleb(624485), [0xe5, 0x8e, 0x26]);
 * ```
 */
export function uleb(n: number): number[] {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`uleb: bad value ${n}`);
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/**
 * Signed LEB128 encoding of a 32-bit integer.
 *
 * @param n Integer in `[-2^31, 2^31)`.
 * @returns The bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sleb } from "./wasm_asm.ts";
 * assert.deepEqual(sleb(-123456), [0xc0, 0xbb, 0x78]);
 * ```
 */
export function sleb(n: number): number[] {
  n |= 0;
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const utf8 = (s: string) => {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
};

/** Opcodes without immediates: text → bytes (`0xfd`-prefixed for SIMD). */
const PLAIN: Record<string, number[]> = {
  "i32.add": [0x6a],
  "i32.sub": [0x6b],
  "i32.mul": [0x6c],
  "i32.lt_u": [0x49],
  "i32.gt_u": [0x4b],
  "i32.ge_u": [0x4f],
  "f32.add": [0x92],
  "f32.mul": [0x94],
  "f32x4.add": [0xfd, ...uleb(0xe4)],
  "f32x4.mul": [0xfd, ...uleb(0xe6)],
  "return": [0x0f],
};

/** Memory access opcodes and their natural alignment (log2 bytes). */
const MEM: Record<string, { code: number[]; align: number }> = {
  "f32.load": { code: [0x2a], align: 2 },
  "f32.store": { code: [0x38], align: 2 },
  "v128.load": { code: [0xfd, ...uleb(0x00)], align: 4 },
  "v128.store": { code: [0xfd, ...uleb(0x0b)], align: 4 },
};

/**
 * One function being assembled: named params and locals, a byte body and a parallel WAT-like
 * text body (one instruction per line, indented by block depth, `;;` comments).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WasmFunc } from "./wasm_asm.ts";
 * const f = new WasmFunc("add1", [["x", "i32"]], ["i32"]);
 * f.get("x").i32(1).op("i32.add");
 * assert.deepEqual(f.body, [0x20, 0, 0x41, 1, 0x6a]); // local.get 0, i32.const 1, i32.add
 * assert.equal(f.text().split("\n")[0], '(func $add1 (export "add1") (param $x i32) (result i32)');
 * ```
 */
export class WasmFunc {
  /** Body bytes (without the local declarations and the final `end`). */
  readonly body: number[] = [];
  private readonly lines: string[] = [];
  private readonly names: string[] = [];
  private readonly types: ValType[] = [];
  private readonly labels: string[] = [];
  private depth = 1;

  /**
   * @param name Export name.
   * @param params Parameters, `[name, type]`.
   * @param results Result types.
   */
  constructor(
    readonly name: string,
    readonly params: [string, ValType][],
    readonly results: ValType[] = [],
  ) {
    for (const [n, t] of params) this.declare(n, t);
  }

  private declare(name: string, type: ValType): void {
    if (this.names.includes(name)) throw new Error(`wasm_asm: local $${name} declared twice`);
    this.names.push(name);
    this.types.push(type);
  }

  /** Declares a local (zero-initialised on entry). */
  local(name: string, type: ValType): this {
    this.declare(name, type);
    return this;
  }

  private idx(name: string): number {
    const i = this.names.indexOf(name);
    if (i < 0) throw new Error(`wasm_asm: no local $${name} in ${this.name}`);
    return i;
  }

  private emit(text: string, bytes: number[]): this {
    this.body.push(...bytes);
    this.lines.push("  ".repeat(this.depth) + text);
    return this;
  }

  /** A `;;` comment line in the text (no bytes). */
  comment(s: string): this {
    this.lines.push("  ".repeat(this.depth) + ";; " + s);
    return this;
  }

  /** An instruction without immediates (`i32.add`, `f32x4.mul`, ...). */
  op(name: string): this {
    const code = PLAIN[name];
    if (!code) throw new Error(`wasm_asm: unknown opcode ${name}`);
    return this.emit(name, code);
  }

  /** `local.get $name`. */
  get(name: string): this {
    return this.emit(`local.get $${name}`, [0x20, ...uleb(this.idx(name))]);
  }

  /** `local.set $name`. */
  set(name: string): this {
    return this.emit(`local.set $${name}`, [0x21, ...uleb(this.idx(name))]);
  }

  /** `local.tee $name`. */
  tee(name: string): this {
    return this.emit(`local.tee $${name}`, [0x22, ...uleb(this.idx(name))]);
  }

  /** `i32.const v`. */
  i32(v: number): this {
    return this.emit(`i32.const ${v}`, [0x41, ...sleb(v)]);
  }

  /** `v128.const i32x4 0 0 0 0` (the zero vector). */
  zeroV128(): this {
    return this.emit("v128.const i32x4 0 0 0 0", [0xfd, ...uleb(0x0c), ...new Array(16).fill(0)]);
  }

  /** `f32x4.extract_lane lane`. */
  extractLane(lane: number): this {
    return this.emit(`f32x4.extract_lane ${lane}`, [0xfd, ...uleb(0x1f), lane]);
  }

  /**
   * A load or store with a constant byte offset (`v128.load offset=3072 align=4`). The
   * alignment hint is 4 bytes for every access: rows of odd width are not 16-byte aligned.
   */
  mem(name: "f32.load" | "f32.store" | "v128.load" | "v128.store", offset: number): this {
    const m = MEM[name];
    const align = 2;
    const text = `${name}${offset ? ` offset=${offset}` : ""}${
      align !== m.align ? ` align=${1 << align}` : ""
    }`;
    return this.emit(text, [...m.code, ...uleb(align), ...uleb(offset)]);
  }

  /** Opens `block $label` (a forward branch target). */
  block(label: string): this {
    this.emit(`block $${label}`, [0x02, 0x40]);
    this.labels.push(label);
    this.depth++;
    return this;
  }

  /** Opens `loop $label` (a backward branch target). */
  loop(label: string): this {
    this.emit(`loop $${label}`, [0x03, 0x40]);
    this.labels.push(label);
    this.depth++;
    return this;
  }

  /** Opens `if` (pops an i32 condition). */
  if(): this {
    this.emit("if", [0x04, 0x40]);
    this.labels.push("");
    this.depth++;
    return this;
  }

  /** Closes the innermost block, loop or if. */
  end(): this {
    this.labels.pop();
    this.depth--;
    return this.emit("end", [0x0b]);
  }

  private depthOf(label: string): number {
    const i = this.labels.lastIndexOf(label);
    if (i < 0) throw new Error(`wasm_asm: no label $${label} in scope`);
    return this.labels.length - 1 - i;
  }

  /** `br $label`. */
  br(label: string): this {
    return this.emit(`br $${label}`, [0x0c, ...uleb(this.depthOf(label))]);
  }

  /** `br_if $label` (pops an i32 condition). */
  brIf(label: string): this {
    return this.emit(`br_if $${label}`, [0x0d, ...uleb(this.depthOf(label))]);
  }

  /** The code-section entry: size, local declarations (runs of one type), body, `end`. */
  encode(): number[] {
    if (this.labels.length) throw new Error(`wasm_asm: ${this.name} has unclosed blocks`);
    const locals = this.types.slice(this.params.length);
    const runs: [number, ValType][] = [];
    for (const t of locals) {
      if (runs.length && runs[runs.length - 1][1] === t) runs[runs.length - 1][0]++;
      else runs.push([1, t]);
    }
    const code = [
      ...uleb(runs.length),
      ...runs.flatMap(([n, t]) => [...uleb(n), VAL_TYPE[t]]),
      ...this.body,
      0x0b,
    ];
    return [...uleb(code.length), ...code];
  }

  /** The function type: `0x60 params results`. */
  typeBytes(): number[] {
    return [
      0x60,
      ...uleb(this.params.length),
      ...this.params.map(([, t]) => VAL_TYPE[t]),
      ...uleb(this.results.length),
      ...this.results.map((t) => VAL_TYPE[t]),
    ];
  }

  /** WAT-like text of the whole function. */
  text(): string {
    const params = this.params.map(([n, t]) => ` (param $${n} ${t})`).join("");
    const results = this.results.length ? ` (result ${this.results.join(" ")})` : "";
    const locals = this.names.slice(this.params.length).map((n, i) =>
      `  (local $${n} ${this.types[this.params.length + i]})`
    );
    return [
      `(func $${this.name} (export "${this.name}")${params}${results}`,
      ...locals,
      ...this.lines,
      ")",
    ].join("\n");
  }
}

const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];

/**
 * Assembles a module that imports one memory as `env.memory` (at least `minPages` 64 KiB
 * pages) and exports every function under its name.
 *
 * @param funcs The functions, in export order.
 * @param minPages Minimum pages of the imported memory.
 * @returns The module bytes (valid input for `new WebAssembly.Module`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assembleModule, WasmFunc } from "./wasm_asm.ts";
 * const f = new WasmFunc("one", [], ["i32"]);
 * f.i32(1);
 * const m = new WebAssembly.Module(assembleModule([f], 1));
 * assert.deepEqual(WebAssembly.Module.exports(m), [{ name: "one", kind: "function" }]);
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * const one = new WebAssembly.Instance(m, { env: { memory } }).exports.one as () => number;
 * assert.equal(one(), 1);
 * ```
 */
export function assembleModule(funcs: WasmFunc[], minPages: number): Uint8Array<ArrayBuffer> {
  const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec(funcs.map((f) => f.typeBytes()))),
    ...section(2, vec([[...utf8("env"), ...utf8("memory"), 0x02, 0x00, ...uleb(minPages)]])),
    ...section(3, vec(funcs.map((_, i) => uleb(i)))),
    ...section(7, vec(funcs.map((f, i) => [...utf8(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vec(funcs.map((f) => f.encode()))),
  ];
  return new Uint8Array(bytes);
}
