/**
 * A model given by its bytes instead of a path: a GGUF file's contents in memory
 * (`Uint8Array`, `ArrayBuffer`), a `Blob` or `File` (a file input's, an upload's), a
 * `Response` the caller fetched (with its own headers), or an `http:`/`https:`
 * `URL` fetched here. Where there is no file system (an edge function, a single binary
 * without the model beside it) this is how a model gets in; the WASM backend streams the
 * bytes straight into its memory, so a download is never held twice.
 *
 * ```
 * openModelBytes(source) → ByteReader (name, size?, sequential reads)
 *   → readGgufStream (header) → the data section, chunk by chunk, into WASM memory
 * ```
 *
 * @module
 */
import { FormatError, GollmError } from "./errors.ts";

/**
 * A model's bytes: a GGUF file's contents, or where to stream them from. A `file:` URL is
 * a path (the loaders take it as one).
 */
export type ModelBytes = Uint8Array | ArrayBuffer | Blob | Response | URL;

/**
 * Sequential reads over a model's bytes (a `ReadableStream`'s chunks, or one array), for
 * readers that go through a file once, front to back, as a GGUF loader does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteReader } from "./model_bytes.ts";
 * const r = ByteReader.fromBytes(new Uint8Array([1, 2, 3, 4, 5]), "five bytes");
 * const dst = new Uint8Array(3);
 * assert.equal(await r.read(dst), 3);
 * assert.deepEqual([...dst], [1, 2, 3]);
 * assert.equal(await r.read(dst), 2); // the last two
 * assert.equal(await r.read(dst), 0); // the end
 * assert.equal(r.position, 5);
 * ```
 */
export class ByteReader {
  /** The source's name for messages: a URL, a file name, or `Uint8Array (N bytes)`. */
  readonly name: string;
  /** Total bytes, when the source says (a `Content-Length`, a Blob's size); else undefined. */
  readonly size: number | undefined;
  /** Bytes read so far (the offset of the next byte in the source). */
  position = 0;
  #reader: ReadableStreamDefaultReader<Uint8Array> | null;
  #chunk: Uint8Array = new Uint8Array(0); // the rest of the last chunk the stream gave
  #done = false;

  /**
   * A reader over a stream of chunks.
   *
   * @param name The source's name for messages.
   * @param size Total bytes, if known.
   * @param stream The bytes, in order.
   */
  constructor(name: string, size: number | undefined, stream: ReadableStream<Uint8Array> | null) {
    this.name = name;
    this.size = size;
    this.#reader = stream ? stream.getReader() : null;
    if (!stream) this.#done = true;
  }

  /**
   * A reader over bytes in memory (no copy: reads copy out of `bytes`).
   *
   * @param bytes The contents.
   * @param name Name for messages.
   * @returns The reader.
   */
  static fromBytes(bytes: Uint8Array, name: string): ByteReader {
    const r = new ByteReader(name, bytes.length, null);
    r.#chunk = bytes;
    return r;
  }

  /**
   * Fills `dst` from the source, as far as the source goes.
   *
   * @param dst Where the next `dst.length` bytes go.
   * @returns Bytes written: `dst.length`, fewer only at the end of the source (0 there).
   * @throws {FormatError} naming the source when the stream fails (a dropped connection).
   */
  async read(dst: Uint8Array): Promise<number> {
    let got = 0;
    while (got < dst.length) {
      if (this.#chunk.length === 0) {
        if (this.#done) break;
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await this.#reader!.read();
        } catch (e) {
          throw new FormatError(
            this.name,
            `reading failed after ${this.position + got} bytes: ${(e as Error).message}`,
          );
        }
        if (next.done) {
          this.#done = true;
          break;
        }
        this.#chunk = next.value;
        continue;
      }
      const n = Math.min(this.#chunk.length, dst.length - got);
      dst.set(this.#chunk.subarray(0, n), got);
      this.#chunk = this.#chunk.subarray(n);
      got += n;
    }
    this.position += got;
    return got;
  }

  /**
   * Reads the rest of the source into one array.
   *
   * @returns The bytes from {@linkcode position} to the end.
   * @throws {FormatError} as {@linkcode read}.
   */
  async readAll(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    const step = 8 << 20;
    for (;;) {
      const left = this.size === undefined ? 0 : this.size - this.position;
      const want = left > 0 ? left : step; // past a stated size: read on to the real end
      const buf = new Uint8Array(want);
      const n = await this.read(buf);
      if (n > 0) parts.push(buf.subarray(0, n)), total += n;
      if (n < want) break;
    }
    if (parts.length === 1) return parts[0];
    const all = new Uint8Array(total);
    let at = 0;
    for (const p of parts) all.set(p, at), at += p.length;
    return all;
  }

  /** Stops the stream (a download is cancelled); reads then return 0. */
  async cancel(): Promise<void> {
    this.#chunk = new Uint8Array(0);
    if (this.#done) return;
    this.#done = true;
    await this.#reader?.cancel().catch(() => {});
  }
}

/**
 * Whether `source` names a local file: a path string or a `file:` URL. A `file:` URL becomes
 * the operating system's path (WHATWG URL → path, as Node's `url.fileURLToPath`): on Windows
 * `file:///C:/m/x.gguf` is `C:\\m\\x.gguf` and `file://server/share/x.gguf` the UNC path
 * `\\\\server\\share\\x.gguf`; elsewhere the decoded pathname.
 *
 * @param source What a loader was given.
 * @param os The operating system whose paths to make (default `Deno.build.os`, or a POSIX
 *   path where there is no `Deno`).
 * @returns The path, or undefined for bytes and remote URLs.
 * @throws {GollmError} for a `file:` URL with a host on a POSIX system (`file://server/x`),
 *   which has no path there.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { localPath } from "./model_bytes.ts";
 * assert.equal(localPath("models/default"), "models/default");
 * assert.equal(localPath(new URL("file:///tmp/m.gguf"), "linux"), "/tmp/m.gguf");
 * assert.equal(localPath(new URL("file:///C:/m/x%20y.gguf"), "windows"), "C:\\m\\x y.gguf");
 * assert.equal(localPath(new URL("file://srv/share/x.gguf"), "windows"), "\\\\srv\\share\\x.gguf");
 * assert.equal(localPath(new URL("https://example.com/m.gguf")), undefined);
 * assert.equal(localPath(new Uint8Array(4)), undefined);
 * ```
 */
export function localPath(
  source: string | ModelBytes,
  os: string = globalThis.Deno?.build.os ?? "linux",
): string | undefined {
  if (typeof source === "string") return source;
  if (!(source instanceof URL) || source.protocol !== "file:") return undefined;
  if (os !== "windows") {
    if (source.hostname !== "") {
      throw new GollmError(`${source.href}: a file: URL with a host has no local path here`);
    }
    return decodeURIComponent(source.pathname);
  }
  // "/C:/m/x.gguf" → "C:\m\x.gguf"; a host makes a UNC path "\\host\share\x.gguf".
  const path = decodeURIComponent(source.pathname.replaceAll("/", "\\"));
  if (source.hostname !== "") return `\\\\${source.hostname}${path}`;
  return path.replace(/^\\([A-Za-z]:)/, "$1");
}

/**
 * Opens a model's bytes for sequential reading: `http:`/`https:` URLs are fetched here
 * (`GET`, following redirects); a `Response` must be OK and unread; a Blob is streamed.
 *
 * @param source The bytes or where they are (not a path: see {@linkcode localPath}).
 * @returns The reader; its `size` is the `Content-Length` or the Blob's size when known.
 * @throws {GollmError} naming the URL for a failed request or a non-2xx status, and for a
 *   URL of another protocol or a `Response` whose body was already read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openModelBytes } from "./model_bytes.ts";
 * const r = await openModelBytes(new Blob([new Uint8Array([71, 71, 85, 70])]));
 * assert.equal(r.name, "Blob (4 bytes)");
 * assert.equal(r.size, 4);
 * assert.deepEqual([...await r.readAll()], [71, 71, 85, 70]); // "GGUF"
 * await assert.rejects(openModelBytes(new URL("ftp://example.com/m.gguf")), /ftp: URLs are not/);
 * ```
 */
export async function openModelBytes(source: ModelBytes): Promise<ByteReader> {
  if (source instanceof Uint8Array) {
    return ByteReader.fromBytes(source, `Uint8Array (${source.length} bytes)`);
  }
  if (source instanceof ArrayBuffer) {
    const bytes = new Uint8Array(source);
    return ByteReader.fromBytes(bytes, `ArrayBuffer (${bytes.length} bytes)`);
  }
  if (source instanceof Blob) {
    const name = source instanceof File && source.name
      ? source.name
      : `Blob (${source.size} bytes)`;
    return new ByteReader(name, source.size, source.stream());
  }
  if (source instanceof URL) {
    if (source.protocol !== "http:" && source.protocol !== "https:") {
      throw new GollmError(
        `${source.href}: ${source.protocol} URLs are not read; pass a path, a file:, http: ` +
          `or https: URL, or the bytes`,
      );
    }
    let res: Response;
    try {
      res = await fetch(source);
    } catch (e) {
      throw new GollmError(`GET ${source.href} failed: ${(e as Error).message}`);
    }
    return responseReader(res, source.href);
  }
  if (source instanceof Response) return responseReader(source, source.url || "Response");
  throw new GollmError(
    `a model is a path, a URL, a Uint8Array, an ArrayBuffer, a Blob or a Response; got ` +
      `${Object.prototype.toString.call(source)}`,
  );
}

/** A reader over an HTTP response's body, after checking its status. */
async function responseReader(res: Response, name: string): Promise<ByteReader> {
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new GollmError(`GET ${name}: HTTP ${res.status} ${res.statusText}`.trimEnd());
  }
  if (res.bodyUsed) throw new GollmError(`${name}: the Response's body was already read`);
  const length = res.headers.get("content-length");
  // A compressed body's length is not the file's: then the size is left unknown.
  const encoded = (res.headers.get("content-encoding") ?? "identity") !== "identity";
  const size = length !== null && !encoded && /^\d+$/.test(length) ? Number(length) : undefined;
  return new ByteReader(name, size, res.body);
}
