/**
 * fetchDefaultModel(): the default model for a gollm run from a URL (JSR), downloaded from a
 * local HTTP server on 127.0.0.1 that serves this repository's models/default.
 */
import assert from "node:assert/strict";
import {
  DEFAULT_MODEL_FILES,
  defaultModelCacheDir,
  defaultModelVersion,
  fetchDefaultModel,
} from "../cli/default_model.ts";
import { GollmError } from "../core/errors.ts";
import { loadGollmDir } from "../formats/gollm_dir.ts";
import type { ProgressEvent } from "../core/progress.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MODEL = `${ROOT}models/default`;
const haveModel = DEFAULT_MODEL_FILES.every((f) => {
  try {
    return Deno.statSync(`${MODEL}/${f}`).isFile;
  } catch {
    return false;
  }
});
if (!haveModel) console.log(`skipped the default-model download test: ${MODEL} is incomplete`);

/** Serves `models/default/<file>` from the repository (404 for anything else) on port 0. */
function serveModel(): { server: Deno.HttpServer; base: string; requests: string[] } {
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      requests.push(path);
      const m = path.match(/^\/pkg\/models\/default\/([a-z.]+)$/);
      if (!m || !DEFAULT_MODEL_FILES.includes(m[1])) {
        return new Response("not found", { status: 404 });
      }
      const bytes = await Deno.readFile(`${MODEL}/${m[1]}`);
      return new Response(bytes, { headers: { "content-length": String(bytes.length) } });
    },
  );
  return { server, base: `http://127.0.0.1:${server.addr.port}/pkg/models/default/`, requests };
}

Deno.test({
  name: "fetchDefaultModel() downloads models/default once into a cache dir that loads",
  ignore: !haveModel,
  async fn() {
    const { server, base, requests } = serveModel();
    const tmp = await Deno.makeTempDir();
    const signal = AbortSignal.timeout(60_000); // bounded: a hung server fails the test
    try {
      const events: ProgressEvent[] = [];
      const dir = await fetchDefaultModel(base, `${tmp}/gollm/default-test`, {
        onProgress: (e) => events.push(e),
        signal,
      });
      assert.equal(dir, `${tmp}/gollm/default-test`);
      for (const f of DEFAULT_MODEL_FILES) {
        assert.deepEqual(
          await Deno.readFile(`${dir}/${f}`),
          await Deno.readFile(`${MODEL}/${f}`),
          f,
        );
      }
      // Only the finished directory remains (the temporary one was renamed).
      assert.deepEqual([...Deno.readDirSync(`${tmp}/gollm`)].map((e) => e.name), ["default-test"]);
      assert.equal(requests.length, DEFAULT_MODEL_FILES.length);
      assert.ok(events.some((e) => e.stage.endsWith("model.safetensors") && e.fraction === 1));
      const ckpt = await loadGollmDir(dir);
      assert.equal(ckpt.format, "gollm");
      assert.ok(ckpt.tokenizer !== null);
      // A complete cache is used as is: no further request.
      await fetchDefaultModel(base, dir, { signal });
      assert.equal(requests.length, DEFAULT_MODEL_FILES.length);

      // A missing file on the server: one GollmError naming the URL; nothing left behind.
      const bad = base.replace("/pkg/", "/nope/");
      const e = await fetchDefaultModel(bad, `${tmp}/gollm/default-bad`, { signal })
        .then(() => null, (e) => e);
      assert.ok(e instanceof GollmError, String(e));
      assert.match(
        e.message,
        /\/nope\/models\/default\/config\.yaml: cannot be downloaded: HTTP 404$/,
      );
      assert.deepEqual([...Deno.readDirSync(`${tmp}/gollm`)].map((e) => e.name), ["default-test"]);
    } finally {
      await server.shutdown();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("defaultModelVersion() and defaultModelCacheDir() name a per-version cache dir", async () => {
  assert.equal(
    await defaultModelVersion("https://jsr.io/@gollm/cli/0.1.0/models/default/"),
    "0.1.0",
  );
  const a = await defaultModelVersion("http://127.0.0.1:1/models/default/");
  const b = await defaultModelVersion("http://127.0.0.1:2/models/default/");
  assert.match(a, /^[0-9a-f]{12}$/);
  assert.notEqual(a, b);
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  try {
    Deno.env.set("XDG_CACHE_HOME", "/tmp/xdg-cache/");
    assert.equal(defaultModelCacheDir("0.1.0"), "/tmp/xdg-cache/gollm/default-0.1.0");
    Deno.env.delete("XDG_CACHE_HOME");
    const home = Deno.env.get("HOME");
    if (home) assert.equal(defaultModelCacheDir("0.1.0"), `${home}/.cache/gollm/default-0.1.0`);
  } finally {
    if (xdg === undefined) Deno.env.delete("XDG_CACHE_HOME");
    else Deno.env.set("XDG_CACHE_HOME", xdg);
  }
});
