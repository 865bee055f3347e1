/**
 * A small WebAssembly binary assembler, written so that every instruction also produces one
 * line of WAT-like text: the text is what `emitWasmListing` and `gollm kernels --wasm` show,
 * the bytes are what runs. It covers what the generated kernels need: i32/i64/f32 scalar
 * code, structured control flow and calls, memory access with offsets on one or several
 * (multi-memory) imported memories, 32- or 64-bit (memory64) addresses, shared memories and
 * atomics (threads proposal), the fixed-width SIMD instructions (i8x16 ... f32x4, shuffles,
 * narrow/extend, extended multiplies, `i32x4.dot_i16x8_s`) and relaxed SIMD
 * (`i32x4.relaxed_dot_i8x16_i7x16_add_s`, `f32x4.relaxed_madd`, behind
 * `wasm_features.ts` `relaxedSimdSupported`).
 *
 * Encoding follows the WebAssembly Core Specification 2.0, chapter 5 "Binary Format"
 * (LEB128 integers, instructions, a function's code entry; the module and its sections are
 * `wasm_assemble.ts`), the SIMD
 * proposal (prefix `0xfd`), the threads proposal (prefix `0xfe`, limits flag 2 = shared),
 * memory64 (limits flag 4 = i64 addresses) and multi-memory (memarg bit 6 = explicit memory
 * index). Opcode tables: `codegen/wasm/opcodes.ts`.
 *
 * @module
 */
import {
  LANE,
  MEM_LANE,
  MEMORY,
  type MemoryOp,
  PLAIN,
  RELAXED,
  SHUFFLE,
  V128_CONST,
} from "./wasm/opcodes.ts";

/** Value types used by the kernels. */
export type ValType = "i32" | "i64" | "f32" | "f64" | "v128";

/** Binary encoding of each value type (Core Specification 2.0 §5.3.1). */
export const VAL_TYPE: Readonly<Record<ValType, number>> = {
  i32: 0x7f,
  i64: 0x7e,
  f32: 0x7d,
  f64: 0x7c,
  v128: 0x7b,
};

/**
 * Unsigned LEB128 encoding of a non-negative integer.
 *
 * @param n Integer in `[0, 2^53)`.
 * @returns The bytes.
 * @throws {RangeError} for a negative or non-integer `n`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { uleb } from "./wasm_asm.ts";
 * assert.deepEqual(uleb(624485), [229, 142, 38]);
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
 * Signed LEB128 encoding of a 32- or 64-bit integer.
 *
 * @param n Integer in `[-2^63, 2^63)` (a number must be a safe integer).
 * @returns The bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sleb } from "./wasm_asm.ts";
 * assert.deepEqual(sleb(-123456), [192, 187, 120]);
 * assert.deepEqual(sleb(2n ** 40n), [128, 128, 128, 128, 128, 32]);
 * ```
 */
export function sleb(n: number | bigint): number[] {
  if (typeof n === "number" && n >= -0x80000000 && n <= 0x7fffffff && Number.isInteger(n)) {
    // 32-bit values (every i32.const) without BigInt: arithmetic shifts are exact here.
    const out: number[] = [];
    let v = n | 0;
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
        out.push(b);
        return out;
      }
      out.push(b | 0x80);
    }
  }
  let v = BigInt(n);
  const out: number[] = [];
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/**
 * A name as the binary format writes it: its UTF-8 length as LEB128, then the bytes.
 *
 * @param s The name.
 * @returns The bytes.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { utf8 } from "./wasm_asm.ts";
 * assert.deepEqual(utf8("env"), [3, 0x65, 0x6e, 0x76]);
 * ```
 */
export function utf8(s: string): number[] {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
}

const f32Bytes = (v: number) => [...new Uint8Array(new Float32Array([v]).buffer)];

/** Options of a memory access: alignment hint (log2 bytes) and memory index. */
export interface MemArg {
  /** Alignment hint, log2 bytes (default: the natural one, at most 2 = 4 bytes). */
  align?: number;
  /** Memory index (multi-memory; default 0). */
  memory?: number;
}

/** Options of a {@linkcode WasmFunc}. */
export interface FuncOptions {
  /** Export the function under its name (default true). */
  export?: boolean;
}

/** Whether new functions keep their text lines (see {@linkcode withoutText}). */
let keepingText = true;

/**
 * Runs `build` with functions created inside it keeping no text lines: only their bytes, for
 * a module that is assembled and run but not listed (a 100M model's step module has about
 * 10 MB of text lines, which would otherwise stay alive until the module is assembled).
 *
 * @param build Creates and fills functions.
 * @returns What `build` returns.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WasmFunc, withoutText } from "./wasm_asm.ts";
 * const f = withoutText(() => new WasmFunc("f", []).i32(1).op("drop"));
 * assert.throws(() => f.text(), /built without its text/);
 * ```
 */
export function withoutText<T>(build: () => T): T {
  const before = keepingText;
  keepingText = false;
  try {
    return build();
  } finally {
    keepingText = before;
  }
}

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
 * assert.equal(
 *   f.text().split("\n")[0],
 *   '(func $add1 (export "add1") (param $x i32) (result i32)',
 * );
 * ```
 */
export class WasmFunc {
  /** Body bytes (without the local declarations and the final `end`; calls not yet resolved). */
  readonly body: number[] = [];
  /** Whether the body uses relaxed-SIMD instructions. */
  usesRelaxed = false;
  /**
   * The memory index {@linkcode WasmFunc.wmem} reads weights from (multi-memory: weights
   * past the first 4 GiB live in `env.memory1`, ...).
   */
  weightMemory = 0;
  /** Exported under its name. */
  readonly exported: boolean;
  private readonly calls: { at: number; name: string }[] = [];
  private readonly lines: string[] = [];
  /** Whether text lines are kept (false inside {@linkcode withoutText}). */
  private readonly keepText = keepingText;
  private readonly names: string[] = [];
  private readonly types: ValType[] = [];
  private readonly labels: string[] = [];
  private depth = 1;

  /**
   * Starts an empty function with its parameters declared as locals.
   *
   * @param name Function (and export) name.
   * @param params Parameters, `[name, type]`.
   * @param results Result types.
   * @param options `export` (default true).
   */
  constructor(
    /** Function (and export) name. */
    readonly name: string,
    /** Parameters, `[name, type]`. */
    readonly params: [string, ValType][],
    /** Result types. */
    readonly results: ValType[] = [],
    options: FuncOptions = {},
  ) {
    this.exported = options.export ?? true;
    for (const [n, t] of params) this.declare(n, t);
  }

  /** Adds a named local or parameter. */
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

  /** Whether a local (or parameter) of that name exists. */
  has(name: string): boolean {
    return this.names.includes(name);
  }

  /** The type of a local (or parameter). */
  typeOf(name: string): ValType {
    return this.types[this.idx(name)];
  }

  /** Index of a local or parameter. */
  private idx(name: string): number {
    const i = this.names.indexOf(name);
    if (i < 0) throw new Error(`wasm_asm: no local $${name} in ${this.name}`);
    return i;
  }

  /** Appends an instruction's bytes and (unless built {@linkcode withoutText}) its text line. */
  private emit(text: string, bytes: number[]): this {
    for (let i = 0; i < bytes.length; i++) this.body.push(bytes[i]);
    if (this.keepText) this.lines.push("  ".repeat(this.depth) + text);
    return this;
  }

  /**
   * A local instruction (`local.get`/`set`/`tee`): opcode, then the index's LEB128 pushed
   * straight into the body, and the text built only when it is kept (the emitters issue
   * hundreds of thousands of these; their garbage grew V8's young generation by ~25 MB).
   */
  private localOp(code: number, verb: string, name: string): this {
    this.body.push(code);
    this.pushUleb(this.idx(name));
    this.line(this.keepText ? `local.${verb} $${name}` : "");
    return this;
  }

  /** A `;;` comment line in the text (no bytes). */
  comment(s: string): this {
    if (this.keepText) this.lines.push("  ".repeat(this.depth) + ";; " + s);
    return this;
  }

  /** An instruction without immediates (`i32.add`, `f32x4.mul`, `i8x16.relaxed_swizzle`...). */
  op(name: string): this {
    const code = PLAIN[name];
    if (!code) throw new Error(`wasm_asm: unknown opcode ${name}`);
    if (RELAXED.has(name)) this.usesRelaxed = true;
    return this.emit(name, code);
  }

  /** Several instructions without immediates, in order. */
  ops(...names: string[]): this {
    for (const n of names) this.op(n);
    return this;
  }

  /** `local.get $name`. */
  get(name: string): this {
    return this.localOp(0x20, "get", name);
  }

  /** `local.set $name`. */
  set(name: string): this {
    return this.localOp(0x21, "set", name);
  }

  /** `local.tee $name`. */
  tee(name: string): this {
    return this.localOp(0x22, "tee", name);
  }

  /** `i32.const v` (v in `[-2^31, 2^32)`; values ≥ 2^31 are written as their i32 pattern). */
  i32(v: number): this {
    this.body.push(0x41);
    for (const b of sleb(v | 0)) this.body.push(b);
    this.line(this.keepText ? `i32.const ${v | 0}` : "");
    return this;
  }

  /** `i64.const v`. */
  i64(v: number | bigint): this {
    return this.emit(`i64.const ${v}`, [0x42, ...sleb(v)]);
  }

  /** `f32.const v` (v rounded to f32). */
  f32(v: number): this {
    const r = Math.fround(v);
    return this.emit(`f32.const ${r}`, [0x43, ...f32Bytes(r)]);
  }

  /** `v128.const` from 16 bytes, shown as `i32x4` words. */
  v128(bytes: ArrayLike<number>): this {
    if (bytes.length !== 16) throw new Error("wasm_asm: v128.const needs 16 bytes");
    const b = Uint8Array.from(bytes);
    const w = new Int32Array(b.buffer);
    const text = `v128.const i32x4 ${[...w].map((x) => "0x" + (x >>> 0).toString(16)).join(" ")}`;
    return this.emit(text, [...V128_CONST, ...b]);
  }

  /** `v128.const i32x4 0 0 0 0` (the zero vector). */
  zeroV128(): this {
    return this.emit("v128.const i32x4 0 0 0 0", [...V128_CONST, ...new Array(16).fill(0)]);
  }

  /** `v128.const i32x4 a b c d`. */
  i32x4(a: number, b = a, c = a, d = a): this {
    return this.v128(new Uint8Array(new Int32Array([a, b, c, d]).buffer));
  }

  /** `v128.const f32x4 a b c d`. */
  f32x4(a: number, b = a, c = a, d = a): this {
    const bytes = new Uint8Array(new Float32Array([a, b, c, d]).buffer);
    const text = `v128.const f32x4 ${[a, b, c, d].map(Math.fround).join(" ")}`;
    return this.emit(text, [...V128_CONST, ...bytes]);
  }

  /** `v128.const i8x16 ...` (16 values in [-128, 255]). */
  i8x16(values: ArrayLike<number>): this {
    const b = Uint8Array.from(values, (v) => v & 0xff);
    if (b.length !== 16) throw new Error("wasm_asm: i8x16 const needs 16 values");
    return this.emit(`v128.const i8x16 ${[...b].join(" ")}`, [...V128_CONST, ...b]);
  }

  /** `f32x4.extract_lane lane`. */
  extractLane(lane: number): this {
    return this.lane("f32x4.extract_lane", lane);
  }

  /** A lane instruction (`i32x4.extract_lane 2`, `f32x4.replace_lane 1`, ...). */
  lane(name: string, lane: number): this {
    const code = LANE[name];
    if (!code) throw new Error(`wasm_asm: unknown lane opcode ${name}`);
    return this.emit(this.keepText ? `${name} ${lane}` : "", [...code, lane]);
  }

  /** `i8x16.shuffle` with 16 lane indices (0..15 first operand, 16..31 second). */
  shuffle(lanes: number[]): this {
    if (lanes.length !== 16 || lanes.some((l) => l < 0 || l > 31)) {
      throw new Error(`wasm_asm: bad shuffle ${lanes}`);
    }
    return this.emit(this.keepText ? `i8x16.shuffle ${lanes.join(" ")}` : "", [
      ...SHUFFLE,
      ...lanes,
    ]);
  }

  /** Appends the LEB128 of a non-negative integer to the body. */
  private pushUleb(n: number): void {
    if (n < 0x80) {
      this.body.push(n);
      return;
    }
    for (const b of uleb(n)) this.body.push(b);
  }

  /** A line of text at the current depth, when text is kept. */
  private line(text: string): void {
    if (this.keepText) this.lines.push("  ".repeat(this.depth) + text);
  }

  /**
   * Appends a memory instruction: opcode and memarg (alignment, memory index when not 0,
   * offset), pushed straight into the body.
   */
  private memOp(name: string, m: MemoryOp, offset: number, arg: MemArg, mem: number): string {
    const align = m.atomic ? m.natural : arg.align ?? Math.min(m.natural, 2);
    for (const b of m.code) this.body.push(b);
    this.pushUleb(mem ? align | 0x40 : align);
    if (mem) this.pushUleb(mem);
    this.pushUleb(offset);
    if (!this.keepText) return "";
    return `${name}${mem ? ` ${mem}` : ""}${offset ? ` offset=${offset}` : ""}${
      align !== m.natural ? ` align=${1 << align}` : ""
    }`;
  }

  /**
   * A load, store or atomic with a constant byte offset (`v128.load offset=3072 align=4`).
   * The default alignment hint is the natural one capped at 4 bytes (rows of odd width and
   * 34-byte blocks are not 16-byte aligned); atomics always use their natural alignment.
   */
  mem(name: string, offset = 0, arg: MemArg = {}): this {
    const m = MEMORY[name];
    if (!m) throw new Error(`wasm_asm: unknown memory opcode ${name}`);
    this.line(this.memOp(name, m, offset, arg, arg.memory ?? 0));
    return this;
  }

  /** A load of weight bytes: {@linkcode WasmFunc.mem} on memory {@linkcode WasmFunc.weightMemory}. */
  wmem(name: string, offset = 0, arg: MemArg = {}): this {
    const m = MEMORY[name];
    if (!m) throw new Error(`wasm_asm: unknown memory opcode ${name}`);
    this.line(this.memOp(name, m, offset, arg, this.weightMemory));
    return this;
  }

  /** A lane load/store (`v128.load16_lane offset=34 2`): address and vector on the stack. */
  memLane(name: string, offset: number, lane: number, arg: MemArg = {}): this {
    const m = MEM_LANE[name];
    if (!m) throw new Error(`wasm_asm: unknown lane memory opcode ${name}`);
    const text = this.memOp(name, m, offset, arg, arg.memory ?? 0);
    this.body.push(lane);
    this.line(this.keepText ? `${text} ${lane}` : "");
    return this;
  }

  /** `call $name` (resolved to a function index when the module is assembled). */
  call(name: string): this {
    this.calls.push({ at: this.body.length, name });
    return this.emit(`call $${name}`, [0x10]);
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

  /** `else` of the innermost `if`. */
  else(): this {
    this.depth--;
    this.emit("else", [0x05]);
    this.depth++;
    return this;
  }

  /** Closes the innermost block, loop or if. */
  end(): this {
    if (!this.labels.length) throw new Error(`wasm_asm: end without a block in ${this.name}`);
    this.labels.pop();
    this.depth--;
    return this.emit("end", [0x0b]);
  }

  /** Branch depth of the innermost label of that name. */
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

  /**
   * The code-section entry: size, local declarations (runs of one type), body, `end`.
   *
   * @param funcIndex Function index of a name, for `call` (default: no calls allowed).
   */
  encode(funcIndex: (name: string) => number = (n) => {
    throw new Error(`wasm_asm: call $${n} needs a module`);
  }): number[] {
    return Array.from(this.encodeBytes(funcIndex));
  }

  /**
   * {@linkcode WasmFunc.encode} written straight into one exact-size byte array: the module's
   * code section is 100s of kB for a 100M model, and building it from spread number arrays
   * left ~20 MB of garbage that grew V8's young generation (peak RSS).
   *
   * @param funcIndex Function index of a name, for `call`.
   * @returns The code-section entry.
   */
  encodeBytes(funcIndex: (name: string) => number = (n) => {
    throw new Error(`wasm_asm: call $${n} needs a module`);
  }): Uint8Array {
    if (this.labels.length) throw new Error(`wasm_asm: ${this.name} has unclosed blocks`);
    const locals = this.types.slice(this.params.length);
    const runs: [number, ValType][] = [];
    for (const t of locals) {
      if (runs.length && runs[runs.length - 1][1] === t) runs[runs.length - 1][0]++;
      else runs.push([1, t]);
    }
    const decls = [...uleb(runs.length), ...runs.flatMap(([n, t]) => [...uleb(n), VAL_TYPE[t]])];
    const callee = this.calls.map((c) => uleb(funcIndex(c.name)));
    const size = decls.length + this.body.length + callee.reduce((a, c) => a + c.length, 0) + 1;
    const head = uleb(size);
    const out = new Uint8Array(head.length + size);
    out.set(head, 0);
    out.set(decls, head.length);
    let at = head.length + decls.length, from = 0;
    const copy = (to: number) => {
      for (let i = from; i < to; i++) out[at++] = this.body[i];
      from = to;
    };
    this.calls.forEach((c, k) => {
      copy(c.at + 1); // through the call opcode
      out.set(callee[k], at);
      at += callee[k].length;
    });
    copy(this.body.length);
    out[at] = 0x0b;
    return out;
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

  /**
   * WAT-like text of the whole function.
   *
   * @throws {Error} when the function was built {@linkcode withoutText}.
   */
  text(): string {
    if (!this.keepText) throw new Error(`wasm_asm: ${this.name} was built without its text`);
    const params = this.params.map(([n, t]) => ` (param $${n} ${t})`).join("");
    const results = this.results.length ? ` (result ${this.results.join(" ")})` : "";
    const locals = this.names.slice(this.params.length).map((n, i) =>
      `  (local $${n} ${this.types[this.params.length + i]})`
    );
    const exp = this.exported ? ` (export "${this.name}")` : "";
    return [
      `(func $${this.name}${exp}${params}${results}`,
      ...locals,
      ...this.lines,
      ")",
    ].join("\n");
  }
}
