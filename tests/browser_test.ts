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
 * error line in the page, after which the page loads the model it had before again.
 * Skipped with a printed reason when Chromium (`$CHROMIUM`, default /usr/bin/chromium) or
 * the assets are absent.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { buildWeb, webHandler } from "../web/serve.ts";
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
