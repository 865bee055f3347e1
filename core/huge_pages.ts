/**
 * Transparent huge pages for the WASM backend's memory: `madvise(MADV_HUGEPAGE)` through
 * Deno's FFI on Linux, before the weights are read in.
 *
 * A fresh `WebAssembly.Memory` is anonymous memory the kernel maps 4 KiB at a time, on first
 * touch. Where that fault is slow (virtual machines: ~3.5 ms per MB on the machine the
 * benchmarks ran on, 0.7 s for a 200 MB F16 model), reading the weights in costs more than
 * the read itself. With `/sys/kernel/mm/transparent_hugepage/enabled` at `madvise` (the
 * default of most distributions) the kernel backs an advised range with 2 MiB pages instead:
 * one fault per 2 MiB (there: 200 MB first touched in ~0.05 s; decode speed the same). llama.cpp gets the same effect by `mmap`ing the file (page cache pages, mapped in
 * batches); a WASM memory cannot map a file, so gollm advises it.
 *
 * Nothing happens (and nothing is asked) unless the process runs on Linux with the `ffi`
 * permission already granted (`deno run -A`, `--allow-ffi`) and `libc.so.6` loads; the
 * environment variable `GOLLM_HUGE_PAGES=0` turns it off. It is a hint: the kernel may still
 * use 4 KiB pages (THP `never`, no free 2 MiB pages), and the results never depend on it.
 *
 * Reference: Linux `madvise(2)` (`MADV_HUGEPAGE` = 14), Documentation/admin-guide/mm/transhuge.rst.
 *
 * @module
 */

/** `MADV_HUGEPAGE` of Linux's `<asm-generic/mman-common.h>`. */
const MADV_HUGEPAGE = 14;
/** Bytes of a transparent huge page on x86-64 and arm64 (4 KiB base pages). */
const HUGE_PAGE = 2n << 20n;

type Libc = Deno.DynamicLibrary<{
  madvise: { parameters: ["pointer", "usize", "i32"]; result: "i32" };
}>;
let libc: Libc | null | undefined;

/** Whether the permission `desc` is granted (a query, never a prompt). */
function granted(desc: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(desc).state === "granted";
  } catch {
    return false;
  }
}

/** libc, or null when this process may not or cannot call it (see the module doc). */
function openLibc(): Libc | null {
  if (typeof Deno === "undefined") return null; // a browser: no FFI
  if (Deno.build.os !== "linux" || !granted({ name: "ffi" })) return null;
  const off = granted({ name: "env", variable: "GOLLM_HUGE_PAGES" }) &&
    Deno.env.get("GOLLM_HUGE_PAGES") === "0";
  if (off) return null;
  if (libc === undefined) {
    try {
      libc = Deno.dlopen("libc.so.6", {
        madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
      });
    } catch {
      libc = null; // no libc.so.6 (musl): leave the pages as they are
    }
  }
  return libc;
}

/**
 * Asks Linux to back bytes `from` .. `to` of `memory` with transparent huge pages (see the
 * module doc); call it on a fresh memory, before those pages are first written. Advise the
 * ranges that are written in full (the weights): a huge page is resident whole, so advising
 * a KV cache that is filled a few rows at a time would raise the resident set.
 *
 * @param memory The memory (shared or not).
 * @param from First byte of the range (default 0).
 * @param to End of the range, exclusive (default the memory's size). Only the 2 MiB-aligned
 *   pages inside `from` .. `to` are advised.
 * @returns Bytes advised: 0 when nothing was done (not Linux, no `ffi` permission,
 *   `GOLLM_HUGE_PAGES=0`, no whole 2 MiB page in the range, or `madvise` refused).
 * @throws {RangeError} when the range is not inside the memory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adviseHugePages } from "./huge_pages.ts";
 * const advised = adviseHugePages(new WebAssembly.Memory({ initial: 128 })); // 8 MiB
 * assert.ok(advised === 0 || advised >= 2 << 20);
 * ```
 */
export function adviseHugePages(
  memory: WebAssembly.Memory,
  from = 0,
  to: number = memory.buffer.byteLength,
): number {
  const buffer = memory.buffer;
  if (!(0 <= from && from <= to && to <= buffer.byteLength)) {
    throw new RangeError(
      `adviseHugePages: range ${from} .. ${to} is not inside the memory of ${buffer.byteLength} bytes`,
    );
  }
  const lib = openLibc();
  if (lib === null) return 0;
  const base = Deno.UnsafePointer.value(
    Deno.UnsafePointer.of(buffer as ArrayBuffer),
  ) as bigint;
  const start = (base + BigInt(from) + HUGE_PAGE - 1n) & ~(HUGE_PAGE - 1n);
  const end = (base + BigInt(to)) & ~(HUGE_PAGE - 1n);
  if (end <= start) return 0;
  const ok = lib.symbols.madvise(Deno.UnsafePointer.create(start), end - start, MADV_HUGEPAGE);
  return ok === 0 ? Number(end - start) : 0;
}
