/**
 * Whether `python3` can import the modules a differential test needs (tiktoken, safetensors,
 * torch, ...), as a skip reason for `Deno.test({ ignore })`.
 *
 * @module
 */

/**
 * Runs `python3 -c "import <modules>"` and returns null when it succeeds, else why not
 * (`python3 cannot import <modules>` or `python3 not runnable: <error>`).
 *
 * @param modules A Python import list, e.g. `"safetensors, torch"`.
 * @example
 * ```ts ignore
 * const why = await pythonSkipReason("tiktoken");
 * if (why) console.log(`skipping the tiktoken differential test: ${why}`);
 * ```
 */
export async function pythonSkipReason(modules: string): Promise<string | null> {
  try {
    const r = await new Deno.Command("python3", {
      args: ["-c", `import ${modules}`],
      stdout: "null",
      stderr: "null",
    }).output();
    return r.success ? null : `python3 cannot import ${modules}`;
  } catch (e) {
    return `python3 not runnable: ${(e as Error).message}`;
  }
}
