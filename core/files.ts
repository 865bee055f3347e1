/**
 * File-system helpers shared by the readers, writers and the CLI, so every reader treats
 * paths the same way:
 *
 * - reads accept only what is meant: {@linkcode checkRegularFile} stats first (never opens a
 *   FIFO, a device or a directory) and {@linkcode readFileBounded} reads at most the size
 *   that stat reported, so `/dev/zero`, `/proc/self/mem` or a FIFO can neither block nor
 *   grow memory;
 * - every I/O failure becomes a one-line {@linkcode FormatError} naming the path;
 * - {@linkcode readJson} accepts a UTF-8 BOM and reports a parse error on one line;
 * - writes are atomic: {@linkcode writeFileAtomic} (temporary sibling file, renamed) and
 *   {@linkcode writeDirAtomic} (temporary sibling directory, renamed); nothing half-written
 *   is left behind.
 *
 * Paths are joined with `node:path` ({@linkcode join}, {@linkcode dirname},
 * {@linkcode basename}, {@linkcode isAbsolute}).
 *
 * @module
 */
import { basename, dirname, isAbsolute, join, resolve, sep } from "node:path";
import { FormatError, GollmError } from "./errors.ts";

export { basename, dirname, isAbsolute, join };

/** What a path is, as error messages say it (`a directory`, `a FIFO`, ...). */
function kindOf(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isFile) return "a regular file";
  if (info.isFifo) return "a FIFO";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "of an unknown kind";
}

/** The OS error text without Deno's `, <op> '<path>'` suffix (the path is named once). */
function osMessage(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/(: |, )(open|stat|read|rename|mkdir|remove|readfile|lstat)[^:]*$/i, "")
    .replace(/\s*\(os error \d+\)/, "");
}

/**
 * Stats `path` (following symlinks) and returns its info when it is a regular file.
 * Never opens the file, so a FIFO cannot block.
 *
 * @param path The file.
 * @param what What the file is for, for the message (`model file`, `tokenizer file`).
 * @returns The stat info (`size` in bytes).
 * @throws {FormatError} `<path>: cannot read <what>: no such file` (or `: it is a directory,
 *   not a regular file`, `: it is a FIFO, ...`, `: <OS reason>`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkRegularFile } from "./files.ts";
 * assert.throws(() => checkRegularFile("/dev/zero", "model file"),
 *   /\/dev\/zero: cannot read model file: it is a character device, not a regular file$/);
 * ```
 */
export function checkRegularFile(path: string, what = "file"): Deno.FileInfo {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new FormatError(path, `cannot read ${what}: no such file`);
    }
    if (e instanceof Deno.errors.NotADirectory) {
      throw new FormatError(path, `cannot read ${what}: a parent is not a directory`);
    }
    throw new FormatError(path, `cannot read ${what}: ${osMessage(e)}`);
  }
  if (!info.isFile) {
    throw new FormatError(path, `cannot read ${what}: it is ${kindOf(info)}, not a regular file`);
  }
  return info;
}

/**
 * Reads a whole regular file, at most as many bytes as stat reported (a file that grows
 * while read is cut there; a `/proc` file that reports size 0 reads as empty).
 *
 * @param path The file.
 * @param what What the file is for, for messages (`model file`).
 * @returns The bytes.
 * @throws {FormatError} naming `path` when it is not a regular file or cannot be read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readFileBounded } from "./files.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.txt`, "abc");
 * assert.equal((await readFileBounded(`${dir}/a.txt`)).length, 3);
 * await assert.rejects(() => readFileBounded(dir), /cannot read file: it is a directory, not a regular file/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readFileBounded(path: string, what = "file"): Promise<Uint8Array> {
  const size = checkRegularFile(path, what).size;
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (e) {
    throw new FormatError(path, `cannot read ${what}: ${osMessage(e)}`);
  }
  try {
    return await readFull(f, new Uint8Array(size));
  } catch (e) {
    throw new FormatError(path, `cannot read ${what}: ${osMessage(e)}`);
  } finally {
    f.close();
  }
}

/**
 * Reads from an open file into `buf` until it is full or the file ends (`FsFile.read` may
 * return less than asked).
 *
 * @param file An open file.
 * @param buf Where the bytes go.
 * @returns The filled part of `buf` (shorter when the file ended first).
 * @throws The OS error of a failed read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readFull } from "./files.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.txt`, "abc");
 * using f = await Deno.open(`${dir}/a.txt`);
 * assert.equal((await readFull(f, new Uint8Array(8))).length, 3);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<Uint8Array> {
  let got = 0;
  while (got < buf.length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got === buf.length ? buf : buf.subarray(0, got);
}

/**
 * Reads a regular file as UTF-8 text (a leading BOM is dropped; invalid bytes become
 * U+FFFD), bounded as {@linkcode readFileBounded}.
 *
 * @throws {FormatError} naming `path` when it is not a regular file or cannot be read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readTextBounded } from "./files.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/c.yaml`, "\ufeffdim: 8\n");
 * assert.equal(await readTextBounded(`${dir}/c.yaml`), "dim: 8\n");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readTextBounded(path: string, what = "file"): Promise<string> {
  return new TextDecoder().decode(await readFileBounded(path, what)); // ignoreBOM false: drops it
}

/**
 * A JSON parse error message on one line: V8 quotes the offending text, newlines included;
 * they become `\n` and the quote is cut to 60 characters.
 */
function jsonMessage(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const m = /^(.*?), "([\s\S]*)" is not valid JSON$/.exec(msg);
  if (!m) return msg.replace(/\s*[\r\n]+\s*/g, " ");
  const quoted = JSON.stringify(m[2].length > 60 ? m[2].slice(0, 60) + "…" : m[2]);
  return `${m[1]} in ${quoted}`;
}

/**
 * Parses JSON text, naming the file on one line when it is not valid JSON.
 *
 * @param text The JSON text (a leading BOM is accepted).
 * @param file Named in the error.
 * @returns The parsed value (unvalidated: callers check its shape).
 * @throws {FormatError} `<file>: is not valid JSON: <what and where>` (one line).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseJson } from "./files.ts";
 * assert.deepEqual(parseJson('\ufeff{"a": 1}', "c.json"), { a: 1 });
 * assert.throws(() => parseJson('{\n "a": x\n}', "c.json"), (e: Error) =>
 *   e.message.startsWith("c.json: is not valid JSON: Unexpected token") && !e.message.includes("\n"));
 * ```
 */
export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (e) {
    throw new FormatError(file, `is not valid JSON: ${jsonMessage(e)}`);
  }
}

/**
 * Reads and parses a JSON file (a regular file, read bounded; a UTF-8 BOM is accepted).
 *
 * @param path The file to read.
 * @returns The parsed value (unvalidated: callers check its shape).
 * @throws {FormatError} `<path>: cannot read JSON file: no such file` (a directory, a FIFO,
 *   an OS error) or `<path>: is not valid JSON: ...`, always one line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readJson } from "./files.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/config.json`, '\ufeff{"vocab_size": 32}');
 * assert.deepEqual(await readJson(`${dir}/config.json`), { vocab_size: 32 });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readJson(path: string): Promise<unknown> {
  return parseJson(await readTextBounded(path, "JSON file"), path);
}

/**
 * Whether `path` exists and is a regular file (false for directories, FIFOs, devices and on
 * any stat error, e.g. a missing file or no permission).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isFile } from "./files.ts";
 * assert.equal(await isFile("/dev/null"), false);
 * ```
 */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * Whether anything (a file, a directory, a link, even a dangling one) is at `path`. Used to
 * refuse an existing output before a long job starts.
 *
 * @param path The path.
 * @returns False when nothing is there (or a parent is not a directory), else true.
 * @throws {FormatError} `<path>: cannot be read: <OS reason>` for any other stat failure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pathExists } from "./files.ts";
 * assert.equal(await pathExists("/"), true);
 * assert.equal(await pathExists("/nonexistent/x"), false);
 * ```
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return false;
    throw new FormatError(path, `cannot be read: ${osMessage(e)}`);
  }
}

/**
 * The bytes a model takes on disk: a file's size, or the sum of the regular files directly
 * in a directory (a gollm or Hugging Face model directory has no subdirectories).
 *
 * @param path A file or directory.
 * @returns Size in bytes.
 * @throws {FormatError} `<path>: cannot be read: <OS reason>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sizeOnDisk } from "./files.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a`, "abc");
 * await Deno.writeTextFile(`${dir}/b`, "de");
 * assert.equal(await sizeOnDisk(dir), 5);
 * assert.equal(await sizeOnDisk(`${dir}/a`), 3);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function sizeOnDisk(path: string): Promise<number> {
  try {
    const info = await Deno.stat(path);
    if (!info.isDirectory) return info.size;
    let total = 0;
    for await (const e of Deno.readDir(path)) {
      if (e.isFile) total += (await Deno.stat(join(path, e.name))).size;
    }
    return total;
  } catch (e) {
    throw new FormatError(path, `cannot be read: ${osMessage(e)}`);
  }
}

/** Where an output path may be created: its parent must be a writable directory. */
async function checkParent(path: string): Promise<void> {
  const parent = dirname(resolve(path));
  let info: Deno.FileInfo | undefined;
  try {
    info = await Deno.stat(parent);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      const why = e instanceof Deno.errors.NotADirectory
        ? "a parent is not a directory"
        : osMessage(e);
      throw new GollmError(`${path}: cannot be written: ${why}`);
    }
  }
  if (info && !info.isDirectory) {
    throw new GollmError(`${path}: cannot be written: ${parent} is not a directory`);
  }
  if (
    parent === "/proc" || parent.startsWith("/proc/") || parent === "/sys" ||
    parent.startsWith("/sys/")
  ) {
    throw new GollmError(`${path}: cannot be written: ${parent} is a kernel file system`);
  }
}

/**
 * The outermost ancestor of `dir` (or `dir` itself) that does not exist yet: what
 * `Deno.mkdir(dir, { recursive: true })` will create, so a failed write can remove it again.
 * Undefined when `dir` exists.
 */
async function firstMissing(dir: string): Promise<string | undefined> {
  let missing: string | undefined;
  for (let d = resolve(dir);; d = dirname(d)) {
    if (await pathExists(d).catch(() => true)) return missing;
    missing = d;
    if (dirname(d) === d) return missing;
  }
}

/**
 * Writes a file atomically: to a temporary sibling, then renamed over `path`. Creates the
 * parent directory (unless `createParent: false`); a failed write leaves no temporary file
 * and no directory it created behind.
 *
 * @param path Target file.
 * @param data Text (written as UTF-8) or bytes, or byte chunks written in order (a list, or
 *   an async iterable that produces them while the file is written, e.g. a GGUF's tensors).
 * @param options `createParent` (default true): create missing parent directories.
 * @throws {GollmError} `<path>: cannot be written: <reason>` (one line); a GollmError thrown
 *   by the chunk iterable propagates unchanged (after the cleanup).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeFileAtomic } from "./files.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/out/k.ts`, "export {};\n");
 * assert.equal(await Deno.readTextFile(`${dir}/out/k.ts`), "export {};\n");
 * await assert.rejects(() => writeFileAtomic(`${dir}/out/k.ts/x`, "no"), /cannot be written/);
 * async function* failing() {
 *   yield new Uint8Array(4);
 *   throw new Error("disk on fire");
 * }
 * await assert.rejects(() => writeFileAtomic(`${dir}/new/sub/f.bin`, failing()), /disk on fire/);
 * assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["out"]);
 * assert.deepEqual([...Deno.readDirSync(`${dir}/out`)].map((e) => e.name), ["k.ts"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array | readonly Uint8Array[] | AsyncIterable<Uint8Array>,
  options: { createParent?: boolean } = {},
): Promise<void> {
  await checkParent(path);
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${crypto.randomUUID().slice(0, 8)}`);
  const created = options.createParent ?? true ? await firstMissing(dir) : undefined;
  try {
    if (created !== undefined) await Deno.mkdir(dir, { recursive: true });
    if (typeof data === "string") await Deno.writeTextFile(tmp, data, { createNew: true });
    else if (data instanceof Uint8Array) await Deno.writeFile(tmp, data, { createNew: true });
    else {
      const f = await Deno.open(tmp, { write: true, createNew: true });
      try {
        for await (const p of data) {
          let done = 0;
          while (done < p.length) done += await f.write(p.subarray(done));
        }
      } finally {
        f.close();
      }
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    if (created !== undefined) await Deno.remove(created, { recursive: true }).catch(() => {});
    if (e instanceof GollmError) throw e;
    throw new GollmError(`${path}: cannot be written: ${osMessage(e)}`, { cause: e });
  }
}

/** Options of {@linkcode writeDirAtomic}. */
export interface WriteDirAtomicOptions {
  /** Replace `dir` when it exists (default false: that is an error). */
  overwrite?: boolean;
  /** Named in the "already exists" error as the way to replace it (e.g. `--force`). */
  overwriteHint?: string;
}

/**
 * Creates a directory atomically: `fill` writes into a temporary sibling directory
 * (`<dir>.tmp-<random>`), which is renamed to `dir` only when `fill` succeeds. On any
 * failure the temporary directory (and any parent directory made for it) is removed and an
 * existing `dir` is untouched.
 *
 * Refuses, with one line naming `dir`: an existing `dir` without `overwrite`; a `dir` that
 * exists and is not a directory; the current directory or one of its ancestors (replacing
 * it would delete the caller's working tree); a parent that is not a directory; a parent in
 * `/proc` or `/sys`.
 *
 * @param dir The directory to create.
 * @param fill Writes the contents into the temporary directory it is given.
 * @param options `overwrite` to replace an existing directory.
 * @throws {GollmError} as above, or `<dir>: cannot be written: <reason>`; errors thrown by
 *   `fill` propagate unchanged (after the cleanup).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeDirAtomic } from "./files.ts";
 * const root = await Deno.makeTempDir();
 * await writeDirAtomic(`${root}/model`, (tmp) => Deno.writeTextFile(`${tmp}/a.txt`, "1"));
 * await assert.rejects(() => writeDirAtomic(`${root}/model`, async () => {}), /already exists/);
 * await assert.rejects(() => writeDirAtomic(`${root}/model/a.txt/x`, async () => {}),
 *   /cannot be written: .*not a directory/);
 * assert.deepEqual([...Deno.readDirSync(root)].map((e) => e.name), ["model"]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function writeDirAtomic(
  dir: string,
  fill: (tmpDir: string) => Promise<void>,
  options: WriteDirAtomicOptions = {},
): Promise<void> {
  const target = dir.replace(/\/+$/, "") || dir;
  const abs = resolve(target);
  const cwd = Deno.cwd();
  if (abs === sep || cwd === abs || cwd.startsWith(abs + sep)) {
    throw new GollmError(
      `${dir}: refusing to replace the current directory or one of its parents; ` +
        `choose a new output directory`,
    );
  }
  await checkParent(target);
  let existing: Deno.FileInfo | undefined;
  try {
    existing = await Deno.lstat(target);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new GollmError(`${target}: cannot be written: ${osMessage(e)}`);
    }
  }
  if (existing && !existing.isDirectory) {
    throw new GollmError(`${target}: already exists and is not a directory`);
  }
  if (existing && !options.overwrite) {
    const hint = options.overwriteHint ? ` (use ${options.overwriteHint} to replace it)` : "";
    throw new GollmError(`${target} already exists; choose another output or remove it${hint}`);
  }
  const tmp = `${target}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  const created = await firstMissing(dirname(tmp)); // parents mkdir creates, removed on failure
  const cleanup = async () => {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    if (created !== undefined) await Deno.remove(created, { recursive: true }).catch(() => {});
  };
  try {
    await Deno.mkdir(tmp, { recursive: true });
  } catch (e) {
    await cleanup();
    throw new GollmError(`${target}: cannot be written: ${osMessage(e)}`);
  }
  try {
    await fill(tmp);
    if (existing) {
      const old = `${target}.old-${crypto.randomUUID().slice(0, 8)}`;
      await Deno.rename(target, old);
      await Deno.rename(tmp, target);
      await Deno.remove(old, { recursive: true });
    } else {
      await Deno.rename(tmp, target);
    }
  } catch (e) {
    await cleanup();
    if (e instanceof GollmError) throw e;
    throw new GollmError(`${target}: cannot be written: ${osMessage(e)}`, { cause: e });
  }
}
