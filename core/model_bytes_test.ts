import assert from "node:assert/strict";
import { ByteReader, localPath, openModelBytes } from "./model_bytes.ts";
import { FormatError, GollmError } from "./errors.ts";

/** A stream of `bytes` cut into chunks of the given sizes (cycled). */
function chunked(bytes: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  let at = 0, i = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      const n = sizes[i++ % sizes.length];
      c.enqueue(bytes.slice(at, at + n));
      at += n;
    },
  });
}

const DATA = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7 + 3) & 255);

Deno.test("ByteReader.read() fills reads across the stream's chunk edges", async () => {
  const r = new ByteReader("test", undefined, chunked(DATA, [1, 13, 250, 7]));
  const out = new Uint8Array(DATA.length);
  let got = 0;
  for (const n of [5, 300, 1, 64, 1000]) {
    got += await r.read(out.subarray(got, Math.min(out.length, got + n)));
  }
  assert.equal(got, DATA.length);
  assert.deepEqual(out, DATA);
  assert.equal(r.position, DATA.length);
  assert.equal(await r.read(new Uint8Array(8)), 0);
});

Deno.test("ByteReader.readAll() reads the rest whether or not the size is known", async () => {
  for (const size of [undefined, DATA.length]) {
    const r = new ByteReader("test", size, chunked(DATA, [333]));
    assert.equal(await r.read(new Uint8Array(10)), 10);
    assert.deepEqual(await r.readAll(), DATA.subarray(10));
  }
  // A source longer than its stated size still reads to its end.
  const longer = new ByteReader("test", 10, chunked(DATA, [100]));
  assert.equal((await longer.readAll()).length, DATA.length);
});

Deno.test("ByteReader.read() names the source when the stream fails", async () => {
  let sent = false;
  const failing = new ReadableStream<Uint8Array>({
    pull(c) {
      if (!sent) return (sent = true), c.enqueue(DATA.slice(0, 100));
      c.error(new Error("connection reset"));
    },
  });
  const r = new ByteReader("http://h/m.gguf", undefined, failing);
  await assert.rejects(
    r.read(new Uint8Array(500)),
    (e: Error) =>
      e instanceof FormatError &&
      e.message === "http://h/m.gguf: reading failed after 100 bytes: connection reset",
  );
});

Deno.test("ByteReader.cancel() stops a stream: reads then return 0", async () => {
  let cancelled = false;
  const s = new ReadableStream<Uint8Array>({
    pull(c) {
      c.enqueue(new Uint8Array(16));
    },
    cancel() {
      cancelled = true;
    },
  });
  const r = new ByteReader("endless", undefined, s);
  assert.equal(await r.read(new Uint8Array(40)), 40);
  await r.cancel();
  assert.ok(cancelled);
  assert.equal(await r.read(new Uint8Array(4)), 0);
});

Deno.test("localPath() takes paths and file: URLs, not bytes or remote URLs", () => {
  assert.equal(localPath("a b/m.gguf"), "a b/m.gguf");
  assert.equal(localPath(new URL("file:///tmp/a%20b/m.gguf")), "/tmp/a b/m.gguf");
  assert.equal(localPath(new URL("http://h/m.gguf")), undefined);
  assert.equal(localPath(new Blob([])), undefined);
});

Deno.test("openModelBytes() names each kind of source and gives its size", async () => {
  const cases: [Parameters<typeof openModelBytes>[0], string][] = [
    [DATA, "Uint8Array (1000 bytes)"],
    [DATA.slice().buffer, "ArrayBuffer (1000 bytes)"],
    [new Blob([DATA]), "Blob (1000 bytes)"],
    [new File([DATA], "m.gguf"), "m.gguf"],
    [new Response(DATA), "Response"],
  ];
  for (const [source, name] of cases) {
    const r = await openModelBytes(source);
    assert.equal(r.name, name);
    assert.deepEqual(await r.readAll(), DATA, name);
  }
  // A Response whose length is not stated, or is the compressed body's, has no size.
  assert.equal((await openModelBytes(new Response(chunked(DATA, [100])))).size, undefined);
  const gz = new Response(DATA, {
    headers: { "content-length": "10", "content-encoding": "gzip" },
  });
  assert.equal((await openModelBytes(gz)).size, undefined);
});

Deno.test("openModelBytes() refuses failed responses, used bodies and other sources", async () => {
  const is = (re: RegExp) => (e: Error) => e instanceof GollmError && re.test(e.message);
  await assert.rejects(
    openModelBytes(new Response("gone", { status: 410, statusText: "Gone" })),
    is(/^GET Response: HTTP 410 Gone$/),
  );
  const used = new Response(DATA);
  await used.arrayBuffer();
  await assert.rejects(openModelBytes(used), is(/the Response's body was already read/));
  await assert.rejects(openModelBytes(new URL("data:,GGUF")), is(/data: URLs are not read/));
  await assert.rejects(
    openModelBytes(42 as unknown as Blob),
    is(/a model is a path, a URL, a Uint8Array, .*; got \[object Number\]/),
  );
});

Deno.test("openModelBytes() fetches an http URL and names it in a failed status", async () => {
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) =>
      new URL(req.url).pathname === "/m.gguf"
        ? new Response(DATA)
        : new Response("no", { status: 404, statusText: "Not Found" }),
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  const r = await openModelBytes(new URL(`${base}/m.gguf`));
  assert.equal(r.name, `${base}/m.gguf`);
  assert.equal(r.size, DATA.length);
  assert.deepEqual(await r.readAll(), DATA);
  await assert.rejects(
    openModelBytes(new URL(`${base}/x.gguf`)),
    (e: Error) => e instanceof GollmError && e.message === `GET ${base}/x.gguf: HTTP 404 Not Found`,
  );
});
