/**
 * `deno task bench:web [--model FILE.gguf]... [--threads 1,2] [--runs 3] [--tokens 128]
 * [--main]`:
 * gollm in headless Chromium (Debian's `chromium`, `$CHROMIUM`, through npm
 * `playwright-core`), the way web/index.html runs it: the bundle of `deno task build:web`,
 * served cross-origin isolated by web/serve.ts, each model loaded into a model worker by
 * `loadModelInWorker` at each thread count, a short warm-up generation, then a greedy one
 * of `--tokens` tokens. The thread counts alternate (1, 2, 1, 2, ...) so that a burst of
 * load from another tenant falls on both; each figure is the median of `--runs`. Prints
 * decode tok/s (GenerateStats), and the longest gap of a 10 ms `setInterval`
 * on the page's main thread during generation (the page stays responsive: the model runs
 * in the worker). `--main` adds a row for the model on the page's main thread (`loadModel`,
 * one thread), as the page ran it before the worker: there the longest gap is the
 * generation. Default model: stories260K from the shared assets.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { buildWeb, webHandler } from "../web/serve.ts";
import { ASSETS } from "../tests/assets.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", multiple: true },
    threads: { type: "string", default: "1,2" },
    runs: { type: "string", default: "3" },
    tokens: { type: "string", default: "128" },
    main: { type: "boolean" },
  },
});
const models = args.values.model ?? [`${ASSETS}/stories260K/stories260K.gguf`];
/** Thread counts in the model worker; 0 stands for the page's main thread (`--main`). */
const threadCounts = args.values.threads.split(",").map(Number)
  .concat(args.values.main ? [0] : []);
const runs = Number(args.values.runs), tokens = Number(args.values.tokens);

/** One load and timed generation in the page; the page's code, as a string (Deno has no DOM). */
const RUN = `async ({ threads, tokens }) => {
  const gollm = await import("./dist/gollm.js");
  const model = threads === 0
    ? await gollm.loadModel(new URL("model.gguf", location.href), { threads: 1 })
    : await gollm.loadModelInWorker("model.gguf", { threads });
  try {
    for await (const _ of model.generate("Once upon a time", { maxTokens: 8, temperature: 0 }));
    let gap = 0, last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      gap = Math.max(gap, now - last);
      last = now;
    }, 10);
    for await (const _ of model.generate("Once upon a time", { maxTokens: tokens, temperature: 0 }));
    clearInterval(tick);
    gap = Math.max(gap, performance.now() - last); // a thread that never ticked: all of it
    const s = model.stats;
    return {
      threads: model.threads,
      decode: 1000 * s.decodeTokens / s.decodeMs,
      decodeTokens: s.decodeTokens,
      gap,
    };
  } finally {
    model.close();
  }
}`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const dir = await Deno.makeTempDir({ prefix: "gollm_bench_web_" });
const browser = await chromium.launch({
  executablePath: Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  await buildWeb(`${dir}/dist`);
  console.log(
    `gollm in Chromium ${browser.version()}, cross-origin isolated, ` +
      `${navigator.hardwareConcurrency} cores, load average ${
        Deno.loadavg().map((x) => x.toFixed(2)).join(" ")
      }; median of ${runs}`,
  );
  for (const model of models) {
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      webHandler({ dist: `${dir}/dist`, files: { "/model.gguf": model }, isolated: true }),
    );
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.addr.port}/`);
    const results = new Map<number, { decode: number; gap: number }[]>();
    for (let r = 0; r < runs; r++) {
      for (const threads of threadCounts) {
        const fn = `(${RUN})(${JSON.stringify({ threads, tokens })})`;
        const got = await page.evaluate(fn) as {
          threads: number;
          decode: number;
          decodeTokens: number;
          gap: number;
        };
        if (got.threads !== Math.max(threads, 1)) {
          throw new Error(`asked ${threads} threads, ran ${got.threads}`);
        }
        results.set(threads, [...results.get(threads) ?? [], got]);
      }
    }
    await page.close();
    const one = median(results.get(threadCounts[0])!.map((x) => x.decode));
    for (const [threads, xs] of results) {
      const decode = median(xs.map((x) => x.decode));
      console.log(
        `${model.replace(/^.*\//, "")}  ${
          threads === 0
            ? "page's main thread, 1 thread"
            : `worker, ${threads} thread${threads > 1 ? "s" : " "}`
        }  ` +
          `decode ${decode.toFixed(1)} tok/s (runs ${
            xs.map((x) => x.decode.toFixed(1)).join(", ")
          }; x${(decode / one).toFixed(2)})  page's longest gap ${
            Math.max(...xs.map((x) => x.gap)).toFixed(0)
          } ms`,
      );
    }
  }
} finally {
  await browser.close();
  await Deno.remove(dir, { recursive: true });
}
