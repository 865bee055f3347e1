/**
 * Test helper: llama.cpp's own block quantisers, called through Deno FFI in the prebuilt
 * `libggml-base.so` that npm's `@node-llama-cpp/linux-x64` ships (no build, no download
 * beyond the npm registry). It is the independent reference for gollm's K-quant quantisers:
 * `quantize_row_*_ref` is exactly what `llama-quantize` runs when no importance matrix is
 * given.
 *
 * The library is found at `$GOLLM_LIBGGML`, else under the cache folder that
 * `deno task fixtures:quant` installs it into (`$XDG_CACHE_HOME/gollm/llama-ggml`, default
 * `~/.cache/gollm/llama-ggml`). Tests that need it skip with a printed reason when absent.
 *
 * @module
 */

/** The npm package (and version) whose `libggml-base.so` is the reference. */
export const LLAMA_GGML_PACKAGE = "@node-llama-cpp/linux-x64@3.22.1";

/** The folder `deno task fixtures:quant` installs {@linkcode LLAMA_GGML_PACKAGE} into. */
export function llamaGgmlCacheDir(): string {
  const base = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
  return `${base}/gollm/llama-ggml`;
}

const LIB_IN_PACKAGE = "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so";

/**
 * Path of `libggml-base.so`: `$GOLLM_LIBGGML`, else inside {@linkcode llamaGgmlCacheDir}, else
 * inside the llama.cpp peer that `deno task peers:install` (bench/llama_cpp.ts) installed under
 * `<cache>/gollm/peers/llama-cpp-*` (the same npm package, so CI installs it once).
 */
export function libggmlPath(): string {
  const own = Deno.env.get("GOLLM_LIBGGML");
  if (own) return own;
  const mine = `${llamaGgmlCacheDir()}/${LIB_IN_PACKAGE}`;
  if (exists(mine)) return mine;
  const peers = `${llamaGgmlCacheDir().replace(/\/llama-ggml$/, "")}/peers`;
  try {
    for (const e of [...Deno.readDirSync(peers)].sort((a, b) => a.name.localeCompare(b.name))) {
      const lib = `${peers}/${e.name}/${LIB_IN_PACKAGE}`;
      if (e.name.startsWith("llama-cpp-") && exists(lib)) return lib;
    }
  } catch {
    // no peer installed: fall through to the path named in the skip message
  }
  return mine;
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Block types whose `quantize_row_<t>_ref` the library exports (lower-case llama.cpp names). */
export const LLAMA_QUANT_TYPES = [
  "q4_0",
  "q4_1",
  "q5_0",
  "q5_1",
  "q8_0",
  "q8_1",
  "q2_K",
  "q3_K",
  "q4_K",
  "q5_K",
  "q6_K",
  "q8_K",
] as const;

/** llama.cpp's reference quantisers and dequantisers, by type name. */
export interface LlamaGgml {
  /** `quantize_row_<type>_ref(x, y, x.length)` into a fresh zeroed buffer of `bytes` bytes. */
  quantize(type: string, x: Float32Array, bytes: number): Uint8Array;
  /** `dequantize_row_<type>(blocks, y, n)` (not for q8_1, which has none). */
  dequantize(type: string, blocks: Uint8Array, n: number): Float32Array;
  /** Unloads the library. */
  close(): void;
}

/**
 * Opens llama.cpp's `libggml-base.so`, or returns null (printing why) when it is absent.
 *
 * @param what What would be skipped, named in the printed reason.
 * @returns The functions, or null.
 * @example
 * ```ts ignore
 * const ggml = openLlamaGgml("llama.cpp parity");
 * if (ggml) console.log(ggml.quantize("q4_K", new Float32Array(256), 144));
 * ```
 */
export function openLlamaGgml(what: string): LlamaGgml | null {
  const path = libggmlPath();
  try {
    Deno.statSync(path);
  } catch {
    console.log(
      `skip ${what}: missing ${path} (run \`deno task fixtures:quant\` or set GOLLM_LIBGGML)`,
    );
    return null;
  }
  const symbols: Record<string, Deno.ForeignFunction> = {};
  for (const t of LLAMA_QUANT_TYPES) {
    symbols[`quantize_row_${t}_ref`] = { parameters: ["buffer", "buffer", "i64"], result: "void" };
    if (t !== "q8_1") {
      symbols[`dequantize_row_${t}`] = { parameters: ["buffer", "buffer", "i64"], result: "void" };
    }
  }
  const lib = Deno.dlopen(path, symbols);
  // deno-lint-ignore no-explicit-any
  const fns = lib.symbols as Record<string, (...args: any[]) => void>;
  return {
    quantize(type, x, bytes) {
      const y = new Uint8Array(bytes);
      fns[`quantize_row_${type}_ref`](x, y, BigInt(x.length));
      return y;
    },
    dequantize(type, blocks, n) {
      const y = new Float32Array(n);
      fns[`dequantize_row_${type}`](blocks, y, BigInt(n));
      return y;
    },
    close: () => lib.close(),
  };
}

/**
 * Deterministic test inputs for `n_blocks` blocks of `block` values: scales from 1e-4 to 1e2,
 * an all-zero block, a constant block, outliers, exact ties after scaling, all-positive
 * blocks (xorshift32, so every run and machine gets the same values).
 *
 * @param block Elements per block.
 * @param nBlocks Number of blocks.
 * @param seed PRNG seed.
 * @returns `(block * nBlocks)` values.
 */
export function quantTestInput(block: number, nBlocks: number, seed: number): Float32Array {
  let s = seed | 0 || 1;
  const u = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  const x = new Float32Array(block * nBlocks);
  for (let b = 0; b < nBlocks; b++) {
    const scale = 10 ** (u() * 6 - 4);
    const o = b * block;
    for (let i = 0; i < block; i++) {
      switch (b % 8) {
        case 0:
          x[o + i] = 0;
          break;
        case 1:
          x[o + i] = scale;
          break;
        case 3:
          x[o + i] = (Math.round((u() * 16 - 8) * 2) / 2) * 0.125;
          break;
        case 4:
          x[o + i] = Math.abs(gauss()) * scale + scale;
          break;
        default:
          x[o + i] = gauss() * scale;
      }
    }
    if (b % 8 === 2) x[o + Math.floor(u() * block)] = 40 * scale;
  }
  return x;
}

/** Path of `libllama.so` beside {@linkcode libggmlPath} (same package). */
export function libllamaPath(): string {
  return libggmlPath().replace(/libggml-base\.so$/, "libllama.v0.5.0.so");
}

/**
 * llama.cpp's own model quantiser, `llama_model_quantize` (what the `llama-quantize` tool
 * runs), with default parameters (no importance matrix, output tensor quantised, one thread),
 * or null (printing why) when the library is absent.
 *
 * @param what What would be skipped, named in the printed reason.
 * @returns `(inPath, outPath, ftypeId) => status` (0 on success), or null.
 * @example
 * ```ts ignore
 * const quantizeFile = openLlamaQuantize("mix parity");
 * quantizeFile?.("m.f32.gguf", "m.q4_k_m.gguf", 15);
 * ```
 */
export function openLlamaQuantize(
  what: string,
): ((inPath: string, outPath: string, ftype: number) => number) | null {
  const path = libllamaPath();
  try {
    Deno.statSync(path);
  } catch {
    console.log(
      `skip ${what}: missing ${path} (run \`deno task fixtures:quant\` or set GOLLM_LIBGGML)`,
    );
    return null;
  }
  const lib = Deno.dlopen(path, {
    llama_backend_init: { parameters: [], result: "void" },
    // llama_model_quantize_params is 56 bytes today; a larger struct return is still returned
    // through memory the caller provides, so 96 bytes leaves room for added fields.
    llama_model_quantize_default_params: {
      parameters: [],
      result: { struct: Array(12).fill("u64") },
    },
    llama_model_quantize: { parameters: ["buffer", "buffer", "buffer"], result: "u32" },
    llama_log_set: { parameters: ["function", "pointer"], result: "void" },
  });
  lib.symbols.llama_backend_init();
  // Silence llama.cpp's per-tensor log lines (one no-op callback for the process).
  const quiet = new Deno.UnsafeCallback(
    { parameters: ["i32", "pointer", "pointer"], result: "void" } as const,
    () => {},
  );
  lib.symbols.llama_log_set(quiet.pointer, null);
  // Off-heap copies: the log callback re-enters JS during the call, and a GC there may move
  // small on-heap typed arrays whose addresses llama.cpp still holds (`params` is read late).
  const stable = (b: Uint8Array) => {
    const out = new Uint8Array(new ArrayBuffer(Math.max(b.length, 128)), 0, b.length);
    out.set(b);
    return out;
  };
  const enc = (s: string) => stable(new TextEncoder().encode(s + "\0"));
  return (inPath, outPath, ftype) => {
    void quiet; // keeps the callback alive (a collected callback would crash the next log)
    const params = stable(lib.symbols.llama_model_quantize_default_params() as Uint8Array);
    const view = new DataView(params.buffer);
    view.setInt32(0, 1, true); // nthread
    view.setInt32(4, ftype, true); // ftype
    return lib.symbols.llama_model_quantize(enc(inPath), enc(outPath), params);
  };
}

/** A model llama.cpp loaded from a GGUF file. */
export interface LlamaLoadedModel {
  /** `llama_vocab_n_tokens`. */
  nTokens: number;
  /** `llama_model_n_params`. */
  nParams: number;
  /** `llama_tokenize(text, add_special, parse_special = false)`. */
  tokenize(text: string, addSpecial: boolean): number[];
  /** `llama_model_free`. */
  free(): void;
}

/**
 * llama.cpp's model loader (`llama_model_load_from_file` with default parameters, CPU backend
 * from the same package), or null (printing why) when the library is absent. Loading checks
 * the whole file: metadata, hyperparameters, vocabulary (merges included) and every tensor's
 * type and shape for its architecture.
 *
 * @param what What would be skipped, named in the printed reason.
 * @returns `load(path)` giving the model, or null when llama.cpp refuses the file.
 * @example
 * ```ts ignore
 * const m = openLlamaLoader("load check")?.(path);
 * console.log(m?.tokenize("Hello", true));
 * ```
 */
export function openLlamaLoader(what: string): ((path: string) => LlamaLoadedModel | null) | null {
  const path = libllamaPath();
  try {
    Deno.statSync(path);
  } catch {
    console.log(`skip ${what}: missing ${path} (run \`deno task fixtures:quant\`)`);
    return null;
  }
  const params = { struct: Array(16).fill("u64") } as const; // llama_model_params (≤ 128 bytes)
  const lib = Deno.dlopen(path, {
    llama_backend_init: { parameters: [], result: "void" },
    llama_log_set: { parameters: ["function", "pointer"], result: "void" },
    llama_model_default_params: { parameters: [], result: params },
    llama_model_load_from_file: { parameters: ["buffer", params], result: "pointer" },
    llama_model_get_vocab: { parameters: ["pointer"], result: "pointer" },
    llama_vocab_n_tokens: { parameters: ["pointer"], result: "i32" },
    llama_model_n_params: { parameters: ["pointer"], result: "u64" },
    llama_tokenize: {
      parameters: ["pointer", "buffer", "i32", "buffer", "i32", "bool", "bool"],
      result: "i32",
    },
    llama_model_free: { parameters: ["pointer"], result: "void" },
  });
  const ggml = Deno.dlopen(path.replace(/libllama\.v0\.5\.0\.so$/, "libggml.v0.5.0.so"), {
    ggml_backend_load_all_from_path: { parameters: ["buffer"], result: "void" },
  });
  // Off-heap buffers (see openLlamaQuantize).
  const cstr = (s: string) => {
    const b = new TextEncoder().encode(s + "\0");
    const out = new Uint8Array(new ArrayBuffer(Math.max(128, b.length)), 0, b.length);
    out.set(b);
    return out;
  };
  const quiet = new Deno.UnsafeCallback(
    { parameters: ["i32", "pointer", "pointer"], result: "void" } as const,
    () => {},
  );
  lib.symbols.llama_log_set(quiet.pointer, null);
  lib.symbols.llama_backend_init();
  ggml.symbols.ggml_backend_load_all_from_path(cstr(path.replace(/\/[^/]*$/, "")));
  return (file) => {
    void quiet;
    const p = new Uint8Array(new ArrayBuffer(128));
    p.set(new Uint8Array(lib.symbols.llama_model_default_params() as Uint8Array));
    const model = lib.symbols.llama_model_load_from_file(cstr(file), p);
    if (model === null) return null;
    const vocab = lib.symbols.llama_model_get_vocab(model);
    return {
      nTokens: lib.symbols.llama_vocab_n_tokens(vocab),
      nParams: Number(lib.symbols.llama_model_n_params(model)),
      tokenize(text, addSpecial) {
        const t = cstr(text);
        const out = new Int32Array(new ArrayBuffer(4 * (t.length + 8)));
        const n = lib.symbols.llama_tokenize(
          vocab,
          t,
          t.length - 1, // without the NUL
          new Uint8Array(out.buffer),
          out.length,
          addSpecial,
          false,
        );
        if (n < 0) throw new Error(`llama_tokenize failed (${n})`);
        return [...out.subarray(0, n)];
      },
      free: () => lib.symbols.llama_model_free(model),
    };
  };
}
