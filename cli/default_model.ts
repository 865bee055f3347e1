/**
 * The shipped default model when gollm runs from a remote URL (e.g. `deno run
 * jsr:@gollm/cli generate`): its files are downloaded once, relative to the module URL, into a
 * per-version cache directory and loaded from there.
 *
 * ```
 * <base>/config.yaml, model.safetensors, tokenizer.tiktoken
 *   -> <cache>/gollm/default-<version>.tmp-<random>/   (downloaded, then renamed:
 *   -> <cache>/gollm/default-<version>/                  core/files.ts writeDirAtomic)
 * ```
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { isFile, join, writeDirAtomic } from "../core/files.ts";
import type { ProgressCallback } from "../core/progress.ts";
import { withProgress } from "./progress_line.ts";

/** The files of `models/default`, in download order. */
export const DEFAULT_MODEL_FILES: readonly string[] = [
  "config.yaml",
  "tokenizer.tiktoken",
  "model.safetensors",
];

/** Options of {@linkcode fetchDefaultModel}. */
export interface FetchDefaultModelOptions {
  /** Receives `downloading <file>` stages with the fraction of that file received. */
  onProgress?: ProgressCallback;
  /** Aborts the downloads (the temporary directory is removed). */
  signal?: AbortSignal;
}

async function isComplete(dir: string): Promise<boolean> {
  for (const f of DEFAULT_MODEL_FILES) if (!(await isFile(join(dir, f)))) return false;
  return true;
}

/** Downloads `url` into the file `path`, reporting the fraction received. */
async function download(
  url: URL,
  path: string,
  progress: ProgressCallback,
  signal?: AbortSignal,
): Promise<void> {
  progress({ stage: `downloading ${url.href}`, fraction: 0 });
  let res: Response;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    throw new GollmError(`${url.href}: cannot be downloaded: ${(e as Error).message}`);
  }
  if (!res.ok || res.body === null) {
    await res.body?.cancel();
    throw new GollmError(`${url.href}: cannot be downloaded: HTTP ${res.status}`);
  }
  const total = Number(res.headers.get("content-length") ?? NaN);
  const file = await Deno.open(path, { write: true, create: true });
  let received = 0;
  try {
    for await (const chunk of res.body) {
      let off = 0;
      while (off < chunk.length) off += await file.write(chunk.subarray(off));
      received += chunk.length;
      if (total > 0) {
        progress({ stage: `downloading ${url.href}`, fraction: Math.min(1, received / total) });
      }
    }
  } catch (e) {
    throw new GollmError(`${url.href}: download failed: ${(e as Error).message}`);
  } finally {
    file.close();
  }
  if (total > 0 && received !== total) {
    throw new GollmError(`${url.href}: download incomplete: got ${received} of ${total} bytes`);
  }
}

/**
 * Makes sure `cacheDir` holds the default model's files, downloading them from `baseUrl`
 * when it does not. Downloads go to a temporary sibling directory that is renamed to
 * `cacheDir` only when every file arrived, so an interrupted download never leaves a
 * half-written model; a complete `cacheDir` is used as is (no request is made).
 *
 * @param baseUrl URL of the `models/default/` directory (a trailing slash is added if absent).
 * @param cacheDir Directory to hold the model, e.g. `~/.cache/gollm/default-0.1.0`.
 * @param options Progress callback and abort signal.
 * @returns `cacheDir`, now a complete gollm model directory.
 * @throws {GollmError} naming the URL when a file cannot be downloaded (HTTP status or network
 *   error), or naming `cacheDir` when it cannot be written.
 *
 * @example
 * ```ts ignore
 * import { fetchDefaultModel } from "./default_model.ts";
 * const dir = await fetchDefaultModel(
 *   "https://jsr.io/@gollm/cli/0.1.0/models/default/",
 *   `${Deno.env.get("HOME")}/.cache/gollm/default-0.1.0`,
 * );
 * ```
 */
export async function fetchDefaultModel(
  baseUrl: string | URL,
  cacheDir: string,
  options: FetchDefaultModelOptions = {},
): Promise<string> {
  const target = cacheDir.replace(/\/+$/, "") || cacheDir;
  if (await isComplete(target)) return target;
  const base = new URL(String(baseUrl).replace(/\/*$/, "/"));
  const progress = options.onProgress ?? (() => {});
  try {
    // An incomplete cacheDir (an interrupted run of an older version) is replaced.
    await writeDirAtomic(target, async (tmp) => {
      for (const name of DEFAULT_MODEL_FILES) {
        await download(new URL(name, base), join(tmp, name), progress, options.signal);
      }
    }, { overwrite: true });
  } catch (e) {
    // Another process may have finished first; its copy is as good as ours.
    if (!(e instanceof GollmError && (await isComplete(target)))) throw e;
  }
  return target;
}

/**
 * The cache directory for the default model of one gollm version:
 * `$XDG_CACHE_HOME/gollm/default-<version>`, else `$HOME/.cache/gollm/default-<version>`
 * (`%LOCALAPPDATA%\gollm\...` on Windows).
 *
 * @param version A version or other key naming this copy of the model (`0.1.0`).
 * @returns The directory path (not created).
 * @throws {GollmError} when no cache location is known (none of the variables is set, or
 *   environment access is not allowed).
 *
 * @example
 * ```ts ignore
 * import { defaultModelCacheDir } from "./default_model.ts";
 * import assert from "node:assert/strict";
 * assert.match(defaultModelCacheDir("0.1.0"), /\/gollm\/default-0\.1\.0$/);
 * ```
 */
export function defaultModelCacheDir(version: string): string {
  const key = `default-${version.replace(/[^A-Za-z0-9._-]/g, "_")}`;
  let root: string | undefined;
  try {
    const xdg = Deno.env.get("XDG_CACHE_HOME");
    const home = Deno.env.get("HOME");
    const local = Deno.env.get("LOCALAPPDATA");
    root = xdg ? xdg : home ? join(home, ".cache") : local;
  } catch (e) {
    throw new GollmError(
      `no --model given and the default model must be downloaded, but the cache location ` +
        `is unknown (${(e as Error).message}); pass --model PATH or allow env access`,
    );
  }
  if (!root) {
    throw new GollmError(
      "no --model given and neither XDG_CACHE_HOME nor HOME is set to cache the default " +
        "model in; pass --model PATH",
    );
  }
  return join(root, "gollm", key);
}

/**
 * A key for the copy of the model at `baseUrl`: the package version in a JSR URL
 * (`https://jsr.io/@gollm/cli/0.1.0/models/default/` → `0.1.0`), else a short hash of the URL.
 *
 * @param baseUrl URL of the `models/default/` directory.
 * @returns The key.
 *
 * @example
 * ```ts
 * import { defaultModelVersion } from "./default_model.ts";
 * import assert from "node:assert/strict";
 * assert.equal(await defaultModelVersion("https://jsr.io/@gollm/cli/0.1.0/models/default/"), "0.1.0");
 * ```
 */
export async function defaultModelVersion(baseUrl: string | URL): Promise<string> {
  const href = String(baseUrl);
  const m = href.match(/^https:\/\/jsr\.io\/@[^/]+\/[^/]+\/([^/]+)\//);
  if (m) return m[1];
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(href));
  return [...new Uint8Array(digest).subarray(0, 6)]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/**
 * The shipped default model directory of a local checkout, resolved from this module's
 * location (any cwd). For a module run from a URL (JSR) use {@linkcode resolveDefaultModel}.
 *
 * @returns An absolute path to `models/default`.
 * @throws {GollmError} when this module is not a local file or the directory is missing.
 *
 * @example
 * ```ts ignore
 * import { defaultModelPath } from "./default_model.ts";
 * console.log(defaultModelPath()); // /.../models/default
 * ```
 */
export function defaultModelPath(): string {
  const url = new URL("../models/default", import.meta.url);
  if (url.protocol !== "file:") {
    throw new GollmError(
      `no --model given and the default model is only available from a local checkout ` +
        `(this module runs from ${url.origin}); pass --model PATH`,
    );
  }
  const path = decodeURIComponent(url.pathname);
  try {
    Deno.statSync(join(path, "config.yaml"));
  } catch {
    throw new GollmError(
      `no --model given and the default model ${path} is missing; pass --model PATH`,
    );
  }
  return path;
}

/**
 * The default model's directory, wherever this module runs from: `models/default` beside it
 * in a local checkout; when run from a URL (`deno run jsr:@gollm/cli ...`), the same files
 * downloaded once from `../models/default/` relative to this module into
 * `~/.cache/gollm/default-<version>` (see cli/default_model.ts), with a progress line.
 *
 * @param quiet Print no progress (e.g. with `--json`).
 * @returns A local directory path.
 * @throws {GollmError} when the local directory is missing, or the download fails.
 *
 * @example
 * ```ts ignore
 * import { resolveDefaultModel } from "./default_model.ts";
 * console.log(await resolveDefaultModel()); // /.../models/default
 * ```
 */
export async function resolveDefaultModel(quiet = false): Promise<string> {
  const base = new URL("../models/default/", import.meta.url);
  if (base.protocol === "file:") return defaultModelPath();
  const dir = defaultModelCacheDir(await defaultModelVersion(base));
  return await withProgress(
    quiet,
    (onProgress) => fetchDefaultModel(base, dir, { onProgress }),
    (d) => `default model ${base.href} -> ${d}`,
  );
}
