/**
 * Loading a GGUF from its bytes (core/model_bytes.ts) instead of a path: stories260K, a real
 * pretrained model, streamed from a local HTTP server in small chunks of unknown total
 * length straight into the WASM memory, reproduces its published greedy text; a copy whose
 * tensor data is shifted by 64 bytes (the same length, every value finite) does not, which
 * shows the check sees a misplaced byte (negative control). Every kind of source gives the
 * logits of the path; truncated, failing and foreign sources get one-line errors naming
 * the source, in the library and in the CLI.
 */
import assert from "node:assert/strict";
import { FormatError, GollmError } from "../core/errors.ts";
import { readGgufStream } from "../formats/gguf/parse.ts";
import { ByteReader } from "../core/model_bytes.ts";
import { type Backend, loadModel } from "../runtime/model.ts";
import { ASSETS, haveFiles, publishedStoriesText, ROOT } from "./assets.ts";
import { greedyText } from "./greedy_decode.ts";
import { shiftTensorData } from "./gguf_builder.ts";

const DIR = `${ASSETS}/stories260K`;
const GGUF = `${DIR}/stories260K.gguf`;
const have = haveFiles("loading stories260K from bytes", [GGUF, `${DIR}/stories260K.md`]);

/** A stream of `bytes` in `chunk`-byte pieces, with no length stated. */
function chunked(bytes: Uint8Array, chunk: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + chunk));
      at += chunk;
    },
  });
}

/** Serves `files` (path → bytes) on 127.0.0.1 in 4 KiB chunks of unstated length, until disposed. */
function serveFiles(files: Record<string, Uint8Array>) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const bytes = files[new URL(req.url).pathname];
    if (!bytes) return new Response("not here", { status: 404, statusText: "Not Found" });
    return new Response(chunked(bytes, 4096));
  });
  return {
    url: (p: string) => new URL(`http://127.0.0.1:${server.addr.port}${p}`),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test({
  name: "loadModel() streams stories260K from an http URL and reproduces the published text",
  ignore: !have,
  fn: async () => {
    const bytes = await Deno.readFile(GGUF);
    await using files = serveFiles({
      "/m.gguf": bytes,
      "/shifted.gguf": await shiftTensorData(bytes, 64),
    });
    const url = files.url;
    const expected = await publishedStoriesText();
    const fractions: number[] = [];
    using m = await loadModel(url("/m.gguf"), {
      backend: "wasm",
      threads: 1,
      onProgress: (e) => e.fraction !== undefined && fractions.push(e.fraction),
    });
    assert.equal(m.backend, "wasm");
    assert.equal(m.checkpoint.path, url("/m.gguf").href);
    // The file is 1.2 MB: its header's first read (1 MiB) takes part of the data section,
    // the rest arrives in 4 KiB chunks.
    assert.equal(fractions.at(-1), 1);
    const text = greedyText(m, m.tokenizer!, 200);
    assert.ok(text.length > 400, `only ${text.length} chars generated`);
    assert.equal(text, expected.slice(0, text.length));
    // Negative control: the same bytes 64 places off give another text.
    using bad = await loadModel(url("/shifted.gguf"), { backend: "wasm", threads: 1 });
    assert.notEqual(greedyText(bad, bad.tokenizer!, 200), text);
  },
});

Deno.test({
  name: "loadModel() gives the path's logits from bytes, an ArrayBuffer, a Blob, a Response, a URL",
  ignore: !have,
  fn: async () => {
    const bytes = await Deno.readFile(GGUF);
    await using files = serveFiles({ "/m.gguf": bytes });
    const url = files.url;
    const prompt = [1, 403, 261, 378, 102];
    const logitsOf = async (source: Parameters<typeof loadModel>[0], backend: Backend) => {
      using m = await loadModel(source, { backend, threads: 1 });
      assert.equal(m.backend, backend);
      return m.forward(prompt, 0).slice();
    };
    for (const backend of ["wasm", "jit"] as const) {
      const want = await logitsOf(GGUF, backend);
      const sources: [string, Parameters<typeof loadModel>[0]][] = [
        ["Uint8Array", bytes],
        ["ArrayBuffer", bytes.slice().buffer],
        ["Blob", new Blob([bytes])],
        ["Response", await fetch(url("/m.gguf"))],
        ["URL", url("/m.gguf")],
        ["file: URL", new URL(`file://${GGUF}`)],
      ];
      for (const [kind, source] of sources) {
        assert.deepEqual(await logitsOf(source, backend), want, `${kind} on ${backend}`);
      }
    }
    // Two threads from a URL: the same logits as one from the path.
    using two = await loadModel(url("/m.gguf"), { backend: "wasm", threads: 2 });
    assert.equal(two.threads, 2);
    assert.deepEqual(two.forward(prompt, 0), await logitsOf(GGUF, "wasm"));
  },
});

Deno.test({
  name: "loadModel() names the source of truncated, failing and foreign bytes",
  ignore: !have,
  fn: async () => {
    const bytes = await Deno.readFile(GGUF);
    await using files = serveFiles({ "/short.gguf": bytes.subarray(0, bytes.length - 1000) });
    const url = files.url;
    const rejects = (
      source: Parameters<typeof loadModel>[0],
      type: abstract new (...args: never[]) => GollmError,
      msg: string,
    ) =>
      assert.rejects(
        loadModel(source, { backend: "wasm", threads: 1 }),
        (e: Error) => e instanceof type && e.message === msg,
      );
    // A stream that ends early (no length stated): found as its data section is read.
    await rejects(
      url("/short.gguf"),
      FormatError,
      `${url("/short.gguf").href}: truncated: the tensor data needs 1171200 bytes after the ` +
        "header at offset 14176, the source ended after 1170200",
    );
    // Bytes of a stated length: found in the header's tensor table.
    await rejects(
      bytes.subarray(0, bytes.length - 1000),
      FormatError,
      "Uint8Array (1184376 bytes): corrupt or truncated: tensor 'blk.4.ffn_up.weight' (F32 " +
        "[64,172]) needs bytes 1141088..1185120 but the file has 1184376",
    );
    await rejects(
      url("/none.gguf"),
      GollmError,
      `GET ${url("/none.gguf").href}: HTTP 404 Not Found`,
    );
    await rejects(
      new TextEncoder().encode("PK\x03\x04 not a model"),
      FormatError,
      "Uint8Array (16 bytes): bad magic: expected 'GGUF', got 'PK\\x03\\x04'",
    );
    // A NaN weight past the header's first read (found by the scan of a streamed chunk).
    const g = await readGgufStream(ByteReader.fromBytes(bytes, "stories260K.gguf"));
    const last = g.tensors.filter((t) => t.nbytes > 400)
      .reduce((a, t) => t.fileOffset > a.fileOffset ? t : a);
    const nan = bytes.slice();
    new DataView(nan.buffer).setFloat32(last.fileOffset + 4 * 100, NaN, true);
    assert.ok(last.fileOffset + 400 > 1 << 20, "the NaN lies past the first 1 MiB");
    await rejects(
      new Blob([nan]),
      FormatError,
      `Blob (${nan.length} bytes): tensor '${last.name}' element 100 is non-finite (NaN)`,
    );
    // A connection that drops halfway through the data.
    let sent = 0;
    const dropping = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= 1 << 20) return c.error(new Error("connection reset"));
        c.enqueue(bytes.slice(sent, sent + 65536));
        sent += 65536;
      },
    });
    await rejects(
      new Response(dropping),
      FormatError,
      "Response: reading failed after 1048576 bytes: connection reset",
    );
  },
});

Deno.test({
  name: "gollm generate and inspect take an http URL of a GGUF; a 404 is one line",
  ignore: !have,
  fn: async () => {
    const bytes = await Deno.readFile(GGUF);
    await using files = serveFiles({ "/m.gguf": bytes });
    const url = files.url;
    const run = async (model: string) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--v8-flags=--experimental-wasm-fp16",
          `${ROOT}cli/main.ts`,
          "generate",
          model,
          "--prompt",
          "Once upon a time",
          "-n",
          "30",
          "--temperature",
          "0",
          "--threads",
          "1",
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = (b: Uint8Array) => new TextDecoder().decode(b);
      return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
    };
    const fromUrl = await run(url("/m.gguf").href);
    assert.equal(fromUrl.code, 0, fromUrl.stderr);
    assert.match(fromUrl.stderr, /loaded http:\/\/127\.0\.0\.1:\d+\/m\.gguf \(gguf, wasm\) in /);
    const fromPath = await run(GGUF);
    assert.equal(fromUrl.stdout, fromPath.stdout);
    assert.ok(fromUrl.stdout.startsWith(", there was a little girl named Lily."), fromUrl.stdout);
    // inspect reads the same header from the URL as from the file.
    const inspect = async (model: string) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}cli/main.ts`, "inspect", model, "--json"],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const { path: _, ...rest } = JSON.parse(new TextDecoder().decode(out.stdout));
      return rest;
    };
    assert.deepEqual(await inspect(url("/m.gguf").href), await inspect(GGUF));
    const missing = await run(url("/none.gguf").href);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, `error: GET ${url("/none.gguf").href}: HTTP 404 Not Found\n`);
  },
});
