/**
 * gollm in a real browser: the bundle of web/gollm.ts and web/worker.ts (`deno bundle
 * --platform browser --code-splitting`) and web/index.html, served by web/serve.ts to
 * headless Chromium (Debian's `chromium`, driven by npm `playwright-core`). The page loads
 * stories260K.gguf from the server into a model worker, streams it into WASM memory and
 * generates at temperature 0: the text must continue the prompt as llama2.c's published
 * output does, with and without cross-origin isolation. With isolation, 2 threads (the
 * model worker and one pool worker it starts, nested) give exactly the 1-thread text, the
 * model reports 2 threads and the page holds one pool worker (none at 1 thread); without
 * isolation, 2 threads are one error line. The same page on a copy of the file whose tensor
 * data is 64 bytes off tells another story (negative control); a missing model is one
 * error line in the page, after which the page loads the model it had before again. An
 * `AbortSignal` stops a generation in the worker (stats `aborted`, fewer tokens than asked),
 * and a loop left early lets the next generation start.
 * The thread pool by itself (tests/browser_pool_worker.ts, bundled, in a module worker):
 * `createThreadPool` with 2 and 3 threads runs each thread's share of one step; a
 * `startThreadPool` straight away refuses in one line (a browser would not start its
 * workers while it blocks), as do a page without isolation and a page's main thread.
 * Skipped with a printed reason when Chromium (`$CHROMIUM`, default /usr/bin/chromium) or
 * the assets are absent.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { buildWeb, WEB, webHandler } from "../web/serve.ts";
import { ASSETS, haveFiles, isFile, publishedStoriesText } from "./assets.ts";
import { shiftTensorData } from "./gguf_builder.ts";

const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";
const GGUF = `${ASSETS}/stories260K/stories260K.gguf`;
const haveChromium = isFile(CHROMIUM);
if (!haveChromium) console.log(`skip browser tests: missing ${CHROMIUM} (set CHROMIUM)`);
const have = haveChromium &&
  haveFiles("browser tests", [GGUF, `${ASSETS}/stories260K/stories260K.md`]);

Deno.test({
  name: "web/index.html runs stories260K in Chromium and continues the prompt as published",
  ignore: !have,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "gollm_web_" });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const dist = `${dir}/dist`;
      await buildWeb(dist);
      // The same file with its tensor data moved 64 bytes toward the front.
      await Deno.writeFile(
        `${dir}/shifted.gguf`,
        await shiftTensorData(await Deno.readFile(GGUF), 64),
      );
      const files = { "/model.gguf": GGUF, "/shifted.gguf": `${dir}/shifted.gguf` };
      const published = await publishedStoriesText();
      const prompt = "Once upon a time";

      for (const isolated of [false, true]) {
        await using server = Deno.serve(
          { hostname: "127.0.0.1", port: 0, onListen() {} },
          webHandler({ dist, files, isolated }),
        );
        const page = await browser.newPage();
        const errors: string[] = [];
        page.on("pageerror", (e) => errors.push(e.message));
        await page.goto(`http://127.0.0.1:${server.addr.port}/`);
        // The page's default: every core when isolated, else 1.
        const cores = await page.evaluate("navigator.hardwareConcurrency");
        assert.equal(await page.inputValue("#threads"), isolated ? String(cores) : "1");
        /** Sets the page's model, prompt and threads, clicks Generate, returns the text and status. */
        const generate = async (model: string, threads = 1) => {
          await page.fill("#model", model);
          await page.fill("#prompt", prompt);
          await page.fill("#tokens", "120");
          await page.fill("#threads", String(threads));
          await page.click("#run");
          // The page sets data-done on its body when the run ends (a string: the page's
          // own code, run there; Deno has no `document`).
          await page.waitForFunction('document.body.dataset.done === "1"', null, {
            timeout: 60_000,
          });
          const text = await page.textContent("#out") ?? "";
          return { text, status: await page.textContent("#status") ?? "" };
        };
        /** The pool's workers in the page: blob-URL workers (the model worker is dist/worker.js). */
        const poolWorkers = () => page.workers().filter((w) => w.url().startsWith("blob:")).length;
        const ok = await generate("model.gguf");
        assert.deepEqual(errors, []);
        assert.match(ok.status, /^120 tokens, decode [\d.]+ tok\/s \(wasm, 1 thread\)$/, ok.status);
        assert.ok(ok.text.length >= 250, `only ${ok.text.length} chars: ${ok.text}`);
        assert.ok(
          published.startsWith(prompt + ok.text),
          `isolated ${isolated}: ${JSON.stringify(ok.text.slice(0, 200))}`,
        );
        assert.equal(poolWorkers(), 0);
        if (isolated) {
          // Two threads: the model worker and one pool worker; the same greedy text.
          const two = await generate("model.gguf", 2);
          assert.deepEqual(errors, []);
          assert.match(two.status, /^120 tokens, decode [\d.]+ tok\/s \(wasm, 2 threads\)$/);
          assert.equal(two.text, ok.text);
          assert.equal(poolWorkers(), 1);
          await page.close();
          continue;
        }
        // Stopping: an AbortSignal aborted at the 3rd piece ends the worker's generation
        // before its next token (stats say aborted, fewer than the 480 asked); leaving the
        // loop early (break) lets the next call start; both texts continue the prompt.
        const gen = (opts: string) => `m.generate(${JSON.stringify(prompt)}, ${opts})`;
        const stopped = await page.evaluate(`(async () => {
          const { loadModelInWorker } = await import("./dist/gollm.js");
          const m = await loadModelInWorker("model.gguf", { threads: 1 });
          const ac = new AbortController();
          let text = "", pieces = 0;
          for await (const p of ${gen("{ maxTokens: 480, temperature: 0, signal: ac.signal }")}) {
            text += p;
            if (++pieces === 3) ac.abort();
          }
          const first = { text, pieces, reason: m.stats.stopReason, tokens: m.stats.tokens.length };
          let broke = "";
          for await (const p of ${gen("{ maxTokens: 480, temperature: 0 }")}) {
            broke += p;
            if (broke.length > 20) break;
          }
          let after = "";
          for await (const p of ${gen("{ maxTokens: 30, temperature: 0 }")}) after += p;
          const second = { reason: m.stats.stopReason, tokens: m.stats.tokens.length };
          m.close();
          return { first, broke, after, second };
        })()`) as {
          first: { text: string; pieces: number; reason: string; tokens: number };
          broke: string;
          after: string;
          second: { reason: string; tokens: number };
        };
        assert.deepEqual(errors, []);
        assert.equal(stopped.first.pieces, 3, "no piece is yielded after the abort");
        assert.equal(stopped.first.reason, "aborted");
        assert.ok(
          stopped.first.tokens >= 3 && stopped.first.tokens < 480,
          `${stopped.first.tokens}`,
        );
        assert.ok(ok.text.startsWith(stopped.first.text), stopped.first.text);
        assert.ok(ok.text.startsWith(stopped.broke), stopped.broke);
        assert.ok(ok.text.startsWith(stopped.after) && stopped.after.length > 20, stopped.after);
        assert.deepEqual(stopped.second, { reason: "max_tokens", tokens: 30 });
        const refused = await generate("model.gguf", 2);
        assert.equal(
          refused.status,
          "error: 2 threads: more than one thread needs cross-origin isolation (serve the page " +
            "with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: " +
            "require-corp; crossOriginIsolated is false here)",
        );
        assert.equal(refused.text, "");
        const bad = await generate("shifted.gguf");
        assert.ok(!published.startsWith(prompt + bad.text), "the shifted file told the story");
        const missing = await generate("none.gguf");
        assert.match(missing.status, /^error: GET http:\/\/127\.0\.0\.1:\d+\/none\.gguf: HTTP 404/);
        assert.equal(missing.text, "");
        // After a failed load, the model loaded before it is loaded again (it was closed).
        assert.equal((await generate("shifted.gguf")).text, bad.text);
        await page.close();
      }
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "runtime/threads.ts in Chromium: createThreadPool runs every thread in a worker, " +
    "and refuses in one line where it cannot",
  ignore: !haveChromium,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "gollm_web_pool_" });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const out = `${dir}/pool_worker.js`;
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["bundle", "--quiet", "--platform", "browser", "--import-map"]
          .concat([
            `${WEB}bundle_imports.json`,
            `${WEB}../tests/browser_pool_worker.ts`,
            "-o",
            out,
          ]),
      }).output();
      assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
      for (const isolated of [true, false]) {
        await using server = Deno.serve(
          { hostname: "127.0.0.1", port: 0, onListen() {} },
          webHandler({ files: { "/pool_worker.js": out }, isolated }),
        );
        const page = await browser.newPage();
        await page.goto(`http://127.0.0.1:${server.addr.port}/`);
        /** What the worker posts for `threads` (the page's code, as a string). */
        const inWorker = (threads: number) =>
          page.evaluate(`new Promise((resolve, reject) => {
            const w = new Worker("/pool_worker.js", { type: "module" });
            w.onmessage = (e) => { w.terminate(); resolve(e.data); };
            w.onerror = (e) => reject(new Error(e.message));
            w.postMessage(${threads});
          })`);
        const refused = "2 threads: more than one thread needs cross-origin isolation " +
          "(serve the page with Cross-Origin-Opener-Policy: same-origin and " +
          "Cross-Origin-Embedder-Policy: require-corp; crossOriginIsolated is false here)";
        if (!isolated) {
          assert.deepEqual(await inWorker(2), { sync: refused, async: refused });
          await page.close();
          continue;
        }
        const notStarted = "2 threads: only 0 of 1 Web Workers have started, and a browser " +
          "starts them only while the caller's event loop runs: await createThreadPool (or " +
          "prestartWorkers, then spareWorkersStarted) first";
        assert.deepEqual(await inWorker(2), { sync: notStarted, async: [1, 2] });
        assert.deepEqual(await inWorker(3), { sync: notStarted, async: [1, 2, 3] });
        // A page's main thread may not block in Atomics.wait.
        assert.equal(
          await page.evaluate(`import("/pool_worker.js").then((m) => m.marks("async", 2))`),
          "2 threads: a page's main thread may not block in Atomics.wait: run the model in a " +
            "Worker (web/gollm.ts loadModelInWorker)",
        );
        await page.close();
      }
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
