/**
 * `deno task web [--model FILE.gguf] [--port 8000]`: builds the browser bundle when it is
 * missing, then serves `web/` on 127.0.0.1 with the model at `/model.gguf`, so that
 * `web/index.html` runs it in the browser. `deno task build:web` (`--build`) only builds it:
 * `deno bundle --platform browser web/gollm.ts -o web/dist/gollm.js` ({@linkcode buildWeb}).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** This directory, with a trailing slash. */
export const WEB: string = fileURLToPath(new URL("./", import.meta.url));

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  gguf: "application/octet-stream",
};

/** What {@linkcode webHandler} serves. */
export interface WebFiles {
  /** The bundle served at `/dist/gollm.js` (default `web/dist/gollm.js`). */
  bundle?: string;
  /** Extra files by URL path (`/model.gguf` → a GGUF file path). */
  files?: Record<string, string>;
  /** Send COOP/COEP headers (cross-origin isolation; gollm does not need it). */
  isolated?: boolean;
}

/**
 * A `Deno.serve` handler for the demo: `/` is `web/index.html`, `/shims/*.js` the import
 * map's modules, `/dist/gollm.js` the bundle, and `files` the rest. Every file is streamed
 * from disk; anything else is a 404.
 *
 * @param options The bundle and extra files.
 * @returns The handler.
 */
export function webHandler(options: WebFiles = {}): (req: Request) => Promise<Response> {
  const files: Record<string, string> = {
    "/": `${WEB}index.html`,
    "/index.html": `${WEB}index.html`,
    "/shims/node_path.js": `${WEB}shims/node_path.js`,
    "/shims/node_worker_threads.js": `${WEB}shims/node_worker_threads.js`,
    "/dist/gollm.js": options.bundle ?? `${WEB}dist/gollm.js`,
    ...options.files,
  };
  const isolation: Record<string, string> = options.isolated
    ? {
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
    }
    : {};
  return async (req) => {
    const path = new URL(req.url).pathname;
    const file = files[path];
    if (file === undefined) return new Response("not found", { status: 404 });
    try {
      const f = await Deno.open(file);
      const type = TYPES[path.split(".").pop()!] ?? TYPES.html;
      return new Response(f.readable, { headers: { "content-type": type, ...isolation } });
    } catch {
      return new Response(`${path}: cannot be read`, { status: 404 });
    }
  };
}

/**
 * Builds the browser bundle: `deno bundle --platform browser web/gollm.ts -o OUT`.
 *
 * @param out The output file.
 * @throws {Error} with deno's output when the bundle fails.
 */
export async function buildWeb(out = `${WEB}dist/gollm.js`): Promise<void> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "browser", `${WEB}gollm.ts`, "-o", out],
    cwd: `${WEB}..`,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (r.code !== 0) throw new Error(`deno bundle failed: ${new TextDecoder().decode(r.stderr)}`);
}

if (import.meta.main) {
  const args = parseArgs({
    args: Deno.args,
    options: {
      model: { type: "string" },
      port: { type: "string", default: "8000" },
      build: { type: "boolean" },
    },
  });
  const bundle = `${WEB}dist/gollm.js`;
  let built = true;
  try {
    await Deno.stat(bundle);
  } catch {
    built = false;
  }
  if (args.values.build || !built) {
    console.error(`building ${bundle}`);
    await buildWeb(bundle);
  }
  if (args.values.build) Deno.exit(0);
  const files: Record<string, string> = {};
  if (args.values.model) files["/model.gguf"] = args.values.model;
  Deno.serve(
    {
      hostname: "127.0.0.1",
      port: Number(args.values.port),
      onListen: ({ port }) => console.error(`gollm in the browser: http://127.0.0.1:${port}/`),
    },
    webHandler({ files }),
  );
}
