/**
 * `deno task web [--model FILE.gguf] [--port 8000] [--no-isolation]`: builds the browser
 * bundle when it is missing, then serves `web/` on 127.0.0.1 with the model at
 * `/model.gguf`, so that `web/index.html` runs it in the browser. It sends the COOP/COEP
 * headers that make the page cross-origin isolated, which more than one thread needs
 * (`--no-isolation` leaves them out: the page then runs one thread). `deno task build:web`
 * (`--build`) only builds it ({@linkcode buildWeb}): `web/gollm.ts` and `web/worker.ts` into
 * `web/dist/` (`gollm.js`, `worker.js` and the chunks they share).
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
  /** The bundle's directory, served at `/dist/` (default `web/dist`). */
  dist?: string;
  /** Extra files by URL path (`/model.gguf` → a GGUF file path). */
  files?: Record<string, string>;
  /**
   * Send the COOP/COEP headers (`Cross-Origin-Opener-Policy: same-origin`,
   * `Cross-Origin-Embedder-Policy: require-corp`) that make the page cross-origin isolated,
   * which more than one thread needs (default false).
   */
  isolated?: boolean;
}

/**
 * A `Deno.serve` handler for the demo: `/` is `web/index.html`, `/dist/NAME.js` the bundle's
 * files, and `files` the rest. Every file is streamed from disk; anything else is a 404.
 *
 * @param options The bundle's directory, extra files, isolation.
 * @returns The handler.
 */
export function webHandler(options: WebFiles = {}): (req: Request) => Promise<Response> {
  const dist = options.dist ?? `${WEB}dist`;
  const files: Record<string, string> = {
    "/": `${WEB}index.html`,
    "/index.html": `${WEB}index.html`,
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
    // The bundle's files by name only: no path leaves the directory.
    const file = /^\/dist\/[\w.-]+\.js$/.test(path) && !path.includes("..")
      ? `${dist}/${path.slice(6)}`
      : files[path];
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
 * Builds the browser bundle: `deno bundle --platform browser --code-splitting` of
 * `web/gollm.ts` (the page's module) and `web/worker.ts` (the model worker) into `OUT/`:
 * `gollm.js`, `worker.js` and the chunks they share. `web/bundle_imports.json` maps the two
 * Node modules the engine names to `web/shims/` inside the bundle (a worker has no import
 * map).
 *
 * @param out The output directory (default `web/dist`).
 * @throws {Error} with deno's output when the bundle fails.
 */
export async function buildWeb(out = `${WEB}dist`): Promise<void> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--import-map",
      `${WEB}bundle_imports.json`,
      "--code-splitting",
      "--outdir",
      out,
      `${WEB}gollm.ts`,
      `${WEB}worker.ts`,
    ],
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
      "no-isolation": { type: "boolean" },
    },
  });
  const dist = `${WEB}dist`;
  let built = true;
  try {
    await Deno.stat(`${dist}/worker.js`);
  } catch {
    built = false;
  }
  if (args.values.build || !built) {
    console.error(`building ${dist}/`);
    await buildWeb(dist);
  }
  if (args.values.build) Deno.exit(0);
  const files: Record<string, string> = {};
  if (args.values.model) files["/model.gguf"] = args.values.model;
  Deno.serve(
    {
      hostname: "127.0.0.1",
      port: Number(args.values.port),
      onListen: ({ port }) =>
        console.error(
          `gollm in the browser: http://127.0.0.1:${port}/ (cross-origin isolated: ` +
            `${args.values["no-isolation"] ? "no, 1 thread" : "yes"})`,
        ),
    },
    webHandler({ files, isolated: !args.values["no-isolation"] }),
  );
}
