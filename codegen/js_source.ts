/**
 * Text of the generated TypeScript: a line builder that indents by block depth and wraps
 * long function headers the way `deno fmt` does, and number literals that round-trip.
 * Used by the JS emitter (`emit_js.ts`) and the op renderers (`ops/`).
 *
 * @module
 */

/** Widest line of the generated module (the repository's `deno fmt` line width). */
export const LINE_WIDTH = 100;

/**
 * Builds source lines, two spaces per block level.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsSource } from "./js_source.ts";
 * const s = new JsSource();
 * s.open("function add_4(x: number, y: number, n: number)");
 * s.line("for (let i = 0; i < n * 4; i++) A[x + i] += A[y + i];");
 * s.close();
 * assert.equal(s.text(), "function add_4(x: number, y: number, n: number) {\n  for (let i = 0; i < n * 4; i++) A[x + i] += A[y + i];\n}\n");
 * ```
 */
export class JsSource {
  /** The lines so far, indented. */
  readonly lines: string[] = [];

  /** @param depth Block level of the first line (1 inside `createKernels`). */
  constructor(private depth = 0) {}

  /** Appends one line at the current depth (an empty string gives an empty line). */
  line(s = ""): void {
    this.lines.push(s === "" ? "" : "  ".repeat(this.depth) + s);
  }

  /**
   * Appends `// text`, wrapped at spaces into several `//` lines when it is wider than the
   * line width.
   */
  comment(text: string): void {
    const room = LINE_WIDTH - 2 * this.depth - 3;
    let line = "";
    for (const word of text.split(" ")) {
      if (line !== "" && line.length + 1 + word.length > room) {
        this.line("// " + line);
        line = word;
      } else {
        line = line === "" ? word : line + " " + word;
      }
    }
    this.line("// " + line);
  }

  /**
   * Opens a block: `s {`. A function header too long for one line is wrapped one parameter
   * per line, as `deno fmt` would.
   */
  open(s: string): void {
    const m = /^(.*function \w+)\((.*)\)$/.exec(s);
    if (m && "  ".repeat(this.depth).length + s.length + 2 > LINE_WIDTH) {
      this.line(m[1] + "(");
      for (const p of m[2].split(/, (?=\w+: )/)) this.line("  " + p + ",");
      this.line(") {");
    } else {
      this.line(s + " {");
    }
    this.depth++;
  }

  /** Closes a block with `s` (default `}`). */
  close(s = "}"): void {
    this.depth--;
    this.line(s);
  }

  /** Closes a block and opens the next one on the same line (`} else {`). */
  mid(s: string): void {
    this.depth--;
    this.line(s);
    this.depth++;
  }

  /**
   * Appends a call statement `f(a, b);`, wrapped one argument per line when it is too long
   * for one line, as `deno fmt` would.
   */
  call(fn: string, args: string[]): void {
    const pad = "  ".repeat(this.depth);
    const one = `${fn}(${args.join(", ")});`;
    if (pad.length + one.length <= LINE_WIDTH) {
      this.line(one);
      return;
    }
    this.line(`${fn}(`);
    for (const a of args) this.line(`  ${a},`);
    this.line(");");
  }

  /** The source text, one trailing newline. */
  text(): string {
    return this.lines.join("\n") + "\n";
  }
}

/**
 * The JS literal of a number that round-trips exactly (`-0` is written `0`).
 *
 * @param v The number.
 * @returns Its shortest round-trip decimal form.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsNumber } from "./js_source.ts";
 * assert.equal(jsNumber(1e-5), "0.00001");
 * assert.equal(Number(jsNumber(Math.fround(0.1))), Math.fround(0.1));
 * ```
 */
export function jsNumber(v: number): string {
  return Object.is(v, -0) ? "0" : String(v);
}
