/**
 * WebAssembly opcode tables for `codegen/wasm_asm.ts`: instruction text → encoding, from the
 * WebAssembly Core Specification 2.0 §5.4 (scalar, memory, control), the fixed-width SIMD
 * proposal (prefix `0xfd`, LEB128 opcode), relaxed SIMD (`0xfd` 0x100..0x113) and the
 * threads proposal (prefix `0xfe`). One table per immediate shape, so the assembler is a
 * lookup: `PLAIN` (no immediate), `MEMORY` (memarg), `LANE` (lane index), `MEM_LANE`
 * (memarg + lane).
 *
 * @module
 */

/** Prefix byte of SIMD instructions. */
export const SIMD = 0xfd;
/** Prefix byte of the threads (atomics) instructions. */
export const ATOMIC = 0xfe;

const simd = (op: number) => {
  const out = [SIMD];
  do {
    let b = op & 0x7f;
    op >>>= 7;
    if (op) b |= 0x80;
    out.push(b);
  } while (op);
  return out;
};

/** Scalar single-byte instructions without immediates. */
const SCALAR: [string, number][] = [
  ["unreachable", 0x00],
  ["nop", 0x01],
  ["return", 0x0f],
  ["drop", 0x1a],
  ["select", 0x1b],
  ["i32.eqz", 0x45],
  ["i32.eq", 0x46],
  ["i32.ne", 0x47],
  ["i32.lt_s", 0x48],
  ["i32.lt_u", 0x49],
  ["i32.gt_s", 0x4a],
  ["i32.gt_u", 0x4b],
  ["i32.le_s", 0x4c],
  ["i32.le_u", 0x4d],
  ["i32.ge_s", 0x4e],
  ["i32.ge_u", 0x4f],
  ["i64.eqz", 0x50],
  ["i64.eq", 0x51],
  ["i64.ne", 0x52],
  ["i64.lt_s", 0x53],
  ["i64.lt_u", 0x54],
  ["i64.gt_s", 0x55],
  ["i64.gt_u", 0x56],
  ["i64.le_s", 0x57],
  ["i64.le_u", 0x58],
  ["i64.ge_s", 0x59],
  ["i64.ge_u", 0x5a],
  ["f32.eq", 0x5b],
  ["f32.ne", 0x5c],
  ["f32.lt", 0x5d],
  ["f32.gt", 0x5e],
  ["f32.le", 0x5f],
  ["f32.ge", 0x60],
  ["i32.clz", 0x67],
  ["i32.ctz", 0x68],
  ["i32.popcnt", 0x69],
  ["i32.add", 0x6a],
  ["i32.sub", 0x6b],
  ["i32.mul", 0x6c],
  ["i32.div_s", 0x6d],
  ["i32.div_u", 0x6e],
  ["i32.rem_s", 0x6f],
  ["i32.rem_u", 0x70],
  ["i32.and", 0x71],
  ["i32.or", 0x72],
  ["i32.xor", 0x73],
  ["i32.shl", 0x74],
  ["i32.shr_s", 0x75],
  ["i32.shr_u", 0x76],
  ["i32.rotl", 0x77],
  ["i32.rotr", 0x78],
  ["i64.add", 0x7c],
  ["i64.sub", 0x7d],
  ["i64.mul", 0x7e],
  ["i64.div_u", 0x80],
  ["i64.rem_u", 0x82],
  ["i64.and", 0x83],
  ["i64.or", 0x84],
  ["i64.xor", 0x85],
  ["i64.shl", 0x86],
  ["i64.shr_s", 0x87],
  ["i64.shr_u", 0x88],
  ["f32.abs", 0x8b],
  ["f32.neg", 0x8c],
  ["f32.ceil", 0x8d],
  ["f32.floor", 0x8e],
  ["f32.trunc", 0x8f],
  ["f32.nearest", 0x90],
  ["f32.sqrt", 0x91],
  ["f32.add", 0x92],
  ["f32.sub", 0x93],
  ["f32.mul", 0x94],
  ["f32.div", 0x95],
  ["f32.min", 0x96],
  ["f32.max", 0x97],
  ["f32.copysign", 0x98],
  ["f64.add", 0xa0],
  ["f64.sub", 0xa1],
  ["f64.mul", 0xa2],
  ["f64.div", 0xa3],
  ["i32.wrap_i64", 0xa7],
  ["i32.trunc_f32_s", 0xa8],
  ["i64.extend_i32_s", 0xac],
  ["i64.extend_i32_u", 0xad],
  ["f32.convert_i32_s", 0xb2],
  ["f32.convert_i32_u", 0xb3],
  ["f32.demote_f64", 0xb6],
  ["f64.convert_i32_s", 0xb7],
  ["f64.promote_f32", 0xbb],
  ["i32.reinterpret_f32", 0xbc],
  ["f32.reinterpret_i32", 0xbe],
  ["i32.extend8_s", 0xc0],
  ["i32.extend16_s", 0xc1],
];

/** SIMD and relaxed-SIMD instructions without immediates (opcode after the `0xfd` prefix). */
const VECTOR: [string, number][] = [
  ["i8x16.swizzle", 0x0e],
  ["i8x16.splat", 0x0f],
  ["i16x8.splat", 0x10],
  ["i32x4.splat", 0x11],
  ["i64x2.splat", 0x12],
  ["f32x4.splat", 0x13],
  ["i8x16.eq", 0x23],
  ["i8x16.gt_s", 0x27],
  ["i16x8.eq", 0x2d],
  ["i32x4.eq", 0x37],
  ["i32x4.gt_s", 0x3b],
  ["f32x4.eq", 0x41],
  ["f32x4.lt", 0x43],
  ["f32x4.gt", 0x44],
  ["v128.not", 0x4d],
  ["v128.and", 0x4e],
  ["v128.andnot", 0x4f],
  ["v128.or", 0x50],
  ["v128.xor", 0x51],
  ["v128.bitselect", 0x52],
  ["v128.any_true", 0x53],
  ["i8x16.abs", 0x60],
  ["i8x16.neg", 0x61],
  ["i8x16.narrow_i16x8_s", 0x65],
  ["i8x16.narrow_i16x8_u", 0x66],
  ["f32x4.ceil", 0x67],
  ["f32x4.floor", 0x68],
  ["f32x4.trunc", 0x69],
  ["f32x4.nearest", 0x6a],
  ["i8x16.shl", 0x6b],
  ["i8x16.shr_s", 0x6c],
  ["i8x16.shr_u", 0x6d],
  ["i8x16.add", 0x6e],
  ["i8x16.sub", 0x71],
  ["i8x16.min_s", 0x76],
  ["i8x16.max_s", 0x78],
  ["i16x8.extadd_pairwise_i8x16_s", 0x7c],
  ["i16x8.extadd_pairwise_i8x16_u", 0x7d],
  ["i32x4.extadd_pairwise_i16x8_s", 0x7e],
  ["i32x4.extadd_pairwise_i16x8_u", 0x7f],
  ["i16x8.abs", 0x80],
  ["i16x8.neg", 0x81],
  ["i16x8.narrow_i32x4_s", 0x85],
  ["i16x8.narrow_i32x4_u", 0x86],
  ["i16x8.extend_low_i8x16_s", 0x87],
  ["i16x8.extend_high_i8x16_s", 0x88],
  ["i16x8.extend_low_i8x16_u", 0x89],
  ["i16x8.extend_high_i8x16_u", 0x8a],
  ["i16x8.shl", 0x8b],
  ["i16x8.shr_s", 0x8c],
  ["i16x8.shr_u", 0x8d],
  ["i16x8.add", 0x8e],
  ["i16x8.sub", 0x91],
  ["i16x8.mul", 0x95],
  ["i16x8.extmul_low_i8x16_s", 0x9c],
  ["i16x8.extmul_high_i8x16_s", 0x9d],
  ["i16x8.extmul_low_i8x16_u", 0x9e],
  ["i16x8.extmul_high_i8x16_u", 0x9f],
  ["i32x4.abs", 0xa0],
  ["i32x4.neg", 0xa1],
  ["i32x4.extend_low_i16x8_s", 0xa7],
  ["i32x4.extend_high_i16x8_s", 0xa8],
  ["i32x4.extend_low_i16x8_u", 0xa9],
  ["i32x4.extend_high_i16x8_u", 0xaa],
  ["i32x4.shl", 0xab],
  ["i32x4.shr_s", 0xac],
  ["i32x4.shr_u", 0xad],
  ["i32x4.add", 0xae],
  ["i32x4.sub", 0xb1],
  ["i32x4.mul", 0xb5],
  ["i32x4.min_s", 0xb6],
  ["i32x4.max_s", 0xb8],
  ["i32x4.dot_i16x8_s", 0xba],
  ["i32x4.extmul_low_i16x8_s", 0xbc],
  ["i32x4.extmul_high_i16x8_s", 0xbd],
  ["f32x4.abs", 0xe0],
  ["f32x4.neg", 0xe1],
  ["f32x4.sqrt", 0xe3],
  ["f32x4.add", 0xe4],
  ["f32x4.sub", 0xe5],
  ["f32x4.mul", 0xe6],
  ["f32x4.div", 0xe7],
  ["f32x4.min", 0xe8],
  ["f32x4.max", 0xe9],
  ["f32x4.pmin", 0xea],
  ["f32x4.pmax", 0xeb],
  ["i32x4.trunc_sat_f32x4_s", 0xf8],
  ["f32x4.convert_i32x4_s", 0xfa],
  ["f32x4.convert_i32x4_u", 0xfb],
  ["i8x16.relaxed_swizzle", 0x100],
  ["i32x4.relaxed_trunc_f32x4_s", 0x101],
  ["f32x4.relaxed_madd", 0x105],
  ["f32x4.relaxed_nmadd", 0x106],
  ["i8x16.relaxed_laneselect", 0x109],
  ["f32x4.relaxed_min", 0x10d],
  ["f32x4.relaxed_max", 0x10e],
  ["i16x8.relaxed_dot_i8x16_i7x16_s", 0x112],
  ["i32x4.relaxed_dot_i8x16_i7x16_add_s", 0x113],
  ["f16x8.demote_f32x4_zero", 0x149],
  ["f32x4.promote_low_f16x8", 0x14b],
];

/** Instructions without immediates: text → bytes. */
export const PLAIN: Record<string, number[]> = Object.fromEntries([
  ...SCALAR.map(([n, c]) => [n, [c]]),
  ...VECTOR.map(([n, c]) => [n, simd(c)]),
  ["atomic.fence", [ATOMIC, 0x03, 0x00]],
]);

/** Relaxed-SIMD instructions (need the feature; see `relaxedSimdSupported`). */
export const RELAXED = new Set(
  VECTOR.filter(([, c]) => c >= 0x100 && c <= 0x113).map(([n]) => n),
);

/** An instruction with a memarg: its bytes and natural alignment (log2 bytes). */
export interface MemoryOp {
  /** Opcode bytes (with prefix). */
  code: number[];
  /** Natural alignment, log2 of the access size. */
  natural: number;
  /** Atomic: the alignment must equal the natural one. */
  atomic?: boolean;
}

const MEMORY_OPS: [string, number[], number, boolean?][] = [
  ["i32.load", [0x28], 2],
  ["i64.load", [0x29], 3],
  ["f32.load", [0x2a], 2],
  ["f64.load", [0x2b], 3],
  ["i32.load8_s", [0x2c], 0],
  ["i32.load8_u", [0x2d], 0],
  ["i32.load16_s", [0x2e], 1],
  ["i32.load16_u", [0x2f], 1],
  ["i64.load32_u", [0x35], 2],
  ["i32.store", [0x36], 2],
  ["i64.store", [0x37], 3],
  ["f32.store", [0x38], 2],
  ["f64.store", [0x39], 3],
  ["i32.store8", [0x3a], 0],
  ["i32.store16", [0x3b], 1],
  ["v128.load", simd(0x00), 4],
  ["v128.load8x8_s", simd(0x01), 3],
  ["v128.load8x8_u", simd(0x02), 3],
  ["v128.load16x4_s", simd(0x03), 3],
  ["v128.load16x4_u", simd(0x04), 3],
  ["v128.load8_splat", simd(0x07), 0],
  ["v128.load16_splat", simd(0x08), 1],
  ["v128.load32_splat", simd(0x09), 2],
  ["v128.load64_splat", simd(0x0a), 3],
  ["v128.store", simd(0x0b), 4],
  ["v128.load32_zero", simd(0x5c), 2],
  ["v128.load64_zero", simd(0x5d), 3],
  ["memory.atomic.notify", [ATOMIC, 0x00], 2, true],
  ["memory.atomic.wait32", [ATOMIC, 0x01], 2, true],
  ["memory.atomic.wait64", [ATOMIC, 0x02], 3, true],
  ["i32.atomic.load", [ATOMIC, 0x10], 2, true],
  ["i32.atomic.store", [ATOMIC, 0x17], 2, true],
  ["i32.atomic.rmw.add", [ATOMIC, 0x1e], 2, true],
  ["i32.atomic.rmw.sub", [ATOMIC, 0x25], 2, true],
  ["i32.atomic.rmw.or", [ATOMIC, 0x33], 2, true],
  ["i32.atomic.rmw.xchg", [ATOMIC, 0x41], 2, true],
  ["i32.atomic.rmw.cmpxchg", [ATOMIC, 0x48], 2, true],
];

/** Instructions taking a memarg (`align`, `offset`, optional memory index). */
export const MEMORY: Record<string, MemoryOp> = Object.fromEntries(
  MEMORY_OPS.map(([n, code, natural, atomic]) => [n, { code, natural, atomic }]),
);

/** Lane instructions (one lane-index byte): text → bytes. */
export const LANE: Record<string, number[]> = {
  "i8x16.extract_lane_s": simd(0x15),
  "i8x16.extract_lane_u": simd(0x16),
  "i8x16.replace_lane": simd(0x17),
  "i16x8.extract_lane_s": simd(0x18),
  "i16x8.extract_lane_u": simd(0x19),
  "i16x8.replace_lane": simd(0x1a),
  "i32x4.extract_lane": simd(0x1b),
  "i32x4.replace_lane": simd(0x1c),
  "i64x2.extract_lane": simd(0x1d),
  "i64x2.replace_lane": simd(0x1e),
  "f32x4.extract_lane": simd(0x1f),
  "f32x4.replace_lane": simd(0x20),
};

/** Lane loads/stores (memarg, then a lane-index byte). */
export const MEM_LANE: Record<string, MemoryOp> = {
  "v128.load8_lane": { code: simd(0x54), natural: 0 },
  "v128.load16_lane": { code: simd(0x55), natural: 1 },
  "v128.load32_lane": { code: simd(0x56), natural: 2 },
  "v128.load64_lane": { code: simd(0x57), natural: 3 },
  "v128.store16_lane": { code: simd(0x59), natural: 1 },
  "v128.store32_lane": { code: simd(0x5a), natural: 2 },
  "v128.store64_lane": { code: simd(0x5b), natural: 3 },
};

/** `v128.const` opcode bytes (16 immediate bytes follow). */
export const V128_CONST: number[] = simd(0x0c);
/** `i8x16.shuffle` opcode bytes (16 lane-index bytes follow). */
export const SHUFFLE: number[] = simd(0x0d);
