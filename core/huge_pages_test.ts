import assert from "node:assert/strict";
import { adviseHugePages } from "./huge_pages.ts";

const MiB = 1 << 20;

/** The kernel's THP mode (`always`, `madvise`, `never`), or null off Linux. */
function thpMode(): string | null {
  try {
    const s = Deno.readTextFileSync("/sys/kernel/mm/transparent_hugepage/enabled");
    return /\[(\w+)\]/.exec(s)![1];
  } catch {
    return null;
  }
}

/** AnonHugePages (kB) of the mappings over `memory`'s buffer, from /proc/self/smaps. */
function hugeKb(memory: WebAssembly.Memory): number {
  const lo = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(memory.buffer as ArrayBuffer)));
  const hi = lo + BigInt(memory.buffer.byteLength);
  let inside = false, kb = 0;
  for (const line of Deno.readTextFileSync("/proc/self/smaps").split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (m) inside = BigInt(`0x${m[1]}`) < hi && lo < BigInt(`0x${m[2]}`);
    else if (inside && line.startsWith("AnonHugePages:")) kb += Number(line.split(/\s+/)[1]);
  }
  return kb;
}

/** A fresh shared memory of `mib` MiB, advised from `from` (or not), then written in full. */
function touched(mib: number, advise: boolean, from = 0): [WebAssembly.Memory, number] {
  const memory = new WebAssembly.Memory({ initial: mib * 16, maximum: mib * 16, shared: true });
  const advised = advise ? adviseHugePages(memory, from) : 0;
  new Uint8Array(memory.buffer).fill(1);
  return [memory, advised];
}

Deno.test("adviseHugePages() backs the advised range with 2 MiB pages", () => {
  const mode = thpMode();
  const [memory, advised] = touched(16, true);
  if (mode === "never" || mode === null) {
    assert.equal(hugeKb(memory), 0);
    return;
  }
  // 16 MiB, of which the 2 MiB-aligned pages inside: at least 14 MiB.
  assert.ok(advised >= 14 * MiB && advised <= 16 * MiB, `advised ${advised}`);
  assert.ok(hugeKb(memory) >= 2048, `AnonHugePages ${hugeKb(memory)} kB`);
});

Deno.test("adviseHugePages() leaves memory alone when not asked or turned off", () => {
  if (thpMode() === "always") return; // the kernel uses huge pages unasked
  // Negative control: the same memory, not advised, stays on 4 KiB pages.
  assert.equal(hugeKb(touched(16, false)[0]), 0);
  Deno.env.set("GOLLM_HUGE_PAGES", "0");
  try {
    const [memory, advised] = touched(16, true);
    assert.equal(advised, 0);
    assert.equal(hugeKb(memory), 0);
  } finally {
    Deno.env.delete("GOLLM_HUGE_PAGES");
  }
});

Deno.test("adviseHugePages() advises only whole 2 MiB pages inside the range", () => {
  const memory = new WebAssembly.Memory({ initial: 16 * 8, maximum: 16 * 8, shared: true });
  // Less than one huge page: nothing to advise.
  assert.equal(adviseHugePages(memory, MiB, 2 * MiB), 0);
  const advised = adviseHugePages(memory, 3 * MiB);
  if (advised !== 0) assert.ok(advised <= 5 * MiB && advised % (2 * MiB) === 0, `${advised}`);
  assert.throws(() => adviseHugePages(memory, 0, 9 * MiB), /range 0 \.\. 9437184/);
  assert.throws(() => adviseHugePages(memory, 2, 1), RangeError);
});
