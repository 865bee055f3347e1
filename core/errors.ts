/**
 * Errors that gollm raises for bad user input (a config, a checkpoint, a flag).
 *
 * The CLI prints `error: <message>` for a {@linkcode GollmError} and exits 1 with no stack
 * trace; any other exception is a bug and keeps its stack.
 *
 * @module
 */

/**
 * Base class of every user-facing gollm error. The message is one precise line that names
 * the file, field or tensor and says what was expected and what was found; line breaks in
 * what a subclass passes (a quoted snippet of a bad file) are folded into spaces.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GollmError } from "./errors.ts";
 * const e = new GollmError("m.json: is not valid JSON: Unexpected token in \"{\n x\"");
 * assert.ok(e instanceof Error);
 * assert.equal(e.message, 'm.json: is not valid JSON: Unexpected token in "{ x"');
 * ```
 */
export class GollmError extends Error {
  /**
   * Creates a user-facing error.
   *
   * @param message One line: what is wrong, where, expected vs actual.
   * @param options Standard `ErrorOptions` (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    // One line, always: a quoted snippet of a bad file must not break the CLI's output.
    super(message.replace(/\s*[\r\n]+\s*/g, " "), options);
    this.name = "GollmError";
  }
}

/**
 * A model config is invalid: a field is missing, unknown, of the wrong type, or
 * inconsistent with another field.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigError } from "./errors.ts";
 * const e = new ConfigError("configs/x.yaml", "n_heads", "must be a positive integer, got 0");
 * assert.equal(e.message, "configs/x.yaml: field 'n_heads' must be a positive integer, got 0");
 * ```
 */
export class ConfigError extends GollmError {
  /** The file the config came from (or a description such as `<object>`). */
  readonly file: string;
  /** The offending field name. */
  readonly field: string;
  /**
   * Creates a config error; the message reads `<file>: field '<field>' <problem>`.
   *
   * @param file Config file path (or a description of the source).
   * @param field Field name.
   * @param problem What is wrong with it, e.g. `must be an integer, got "12"`.
   */
  constructor(file: string, field: string, problem: string) {
    super(`${file}: field '${field}' ${problem}`);
    this.name = "ConfigError";
    this.file = file;
    this.field = field;
  }
}

/**
 * A checkpoint or tokenizer file is malformed: bad magic, truncated, corrupt header, a
 * missing or mis-shaped tensor, an unsupported dtype.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FormatError } from "./errors.ts";
 * const e = new FormatError("m.gguf", "bad magic: expected 'GGUF', got 'GGML'");
 * assert.equal(e.message, "m.gguf: bad magic: expected 'GGUF', got 'GGML'");
 * ```
 */
export class FormatError extends GollmError {
  /** The file that could not be read. */
  readonly file: string;
  /**
   * Creates a format error; the message reads `<file>: <problem>`.
   *
   * @param file File path.
   * @param problem What is wrong, naming the tensor or field when there is one.
   */
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = "FormatError";
    this.file = file;
  }
}

/**
 * A model does not fit: the memory its options ask for (KV cache, activations, weights) is
 * over a hard limit (a 32-bit WebAssembly memory holds 4 GiB) or could not be allocated. The
 * message gives the bytes needed, the limit, and the option that lowers it
 * (`--kv-capacity` / `kvCapacity`, `--prefill-chunk` / `prefillChunk`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GollmError, ResourceError } from "./errors.ts";
 * const e = new ResourceError("the arena needs 8 GiB; lower --kv-capacity", 2 ** 33, 2 ** 32);
 * assert.ok(e instanceof GollmError);
 * assert.equal(e.needed, 8589934592);
 * assert.equal(e.limit, 4294967296);
 * ```
 */
export class ResourceError extends GollmError {
  /** Bytes needed. */
  readonly needed: number;
  /** The limit in bytes, when there is a fixed one (undefined: the allocation failed). */
  readonly limit: number | undefined;
  /**
   * Creates a resource error.
   *
   * @param message One line: what needs how much, the limit, and the option that lowers it.
   * @param needed Bytes needed.
   * @param limit The limit in bytes, if a fixed one was exceeded.
   */
  constructor(message: string, needed: number, limit?: number) {
    super(message);
    this.name = "ResourceError";
    this.needed = needed;
    this.limit = limit;
  }
}
