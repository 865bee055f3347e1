/**
 * JSON-schema structured outputs, the schema side: {@linkcode compileJsonSchema} turns a
 * JSON Schema into a graph of {@linkcode SchemaNode}s that
 * {@linkcode JsonSchemaRecognizer} (runtime/json_schema_recognizer.ts) runs over bytes, as
 * OpenAI's Structured Outputs (`response_format: {"type": "json_schema"}`,
 * platform.openai.com/docs/guides/structured-outputs) and llama.cpp's server
 * (`common/json-schema-to-grammar.cpp`) constrain a reply to a schema.
 *
 * The subset (OpenAI's Structured Outputs subset, plus what llama.cpp's converter takes):
 *
 * - `type`: `object`, `array`, `string`, `number`, `integer`, `boolean`, `null`, or a list of
 *   them (`["string", "null"]`); `nullable: true` adds `null`. Without `type`, the type is
 *   the one the keywords imply (`properties` → object, `items` → array, `minLength` →
 *   string), else any JSON value (`{}` and `true` are any value too).
 * - `properties`, `required`: properties come in the schema's order (as llama.cpp and OpenAI
 *   write them); a required one must appear, an optional one may be skipped.
 * - `additionalProperties`: absent means `false`, OpenAI's strict behaviour (llama.cpp's
 *   converter allows extra properties instead): only the declared properties. `true` or a
 *   schema is taken on an object without `properties` (a map: any keys, each value valid
 *   for the schema) and refused next to `properties`.
 * - `enum`, `const`: the values as `JSON.stringify` writes them (the values that the rest of
 *   the schema refuses are dropped).
 * - `items`, `minItems`, `maxItems`; `minLength`, `maxLength` (in code points; such a
 *   string takes no `\uD800`-`\uDFFF` escapes: the character is written as UTF-8 instead).
 * - `anyOf`, and `oneOf` read as `anyOf` (as llama.cpp does).
 * - `$ref` to `#`, `#/$defs/NAME` or `#/definitions/NAME`, recursion included (a cycle must
 *   pass through an object or array).
 * - Annotations are ignored: `title`, `description`, `default`, `examples`, `$schema`,
 *   `$id`, `$comment`, `deprecated`, `readOnly`, `writeOnly`.
 *
 * Everything else (`pattern`, `format`, `minimum`, `allOf`, `prefixItems`, ...) is refused
 * with a {@linkcode JsonSchemaError} naming the schema path. Numbers of type `integer` are
 * written without a fraction or exponent (as llama.cpp's grammar writes them).
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { JsonSchemaRecognizer } from "./json_schema_recognizer.ts";

/** A schema the compiler refuses: the message names the path (`schema.properties.age`). */
export class JsonSchemaError extends GollmError {
  /**
   * Creates the error.
   * @param path Where in the schema (e.g. `response_format.json_schema.schema.items`).
   * @param what What is wrong there (e.g. `'pattern' is not supported`).
   */
  constructor(readonly path: string, what: string) {
    super(`${path}: ${what}`);
    this.name = "JsonSchemaError";
  }
}

/**
 * One node of a compiled schema: what a value there may be. `id` is the node's number in
 * its schema (state signatures name nodes by it). `alt` is a choice (`anyOf`, a type list,
 * an `enum`); `literal` is exact bytes (`true`, an enum value, a property's quoted name);
 * `max` is `Infinity` when unbounded.
 */
export type SchemaNode =
  | { kind: "alt"; id: number; alts: SchemaNode[]; ref?: string }
  | {
    kind: "object";
    id: number;
    props: SchemaProperty[];
    /** Index of the last required property (-1: none). */
    lastRequired: number;
    /** The schema of keys beyond `props` (a map), or null: none. */
    extra: SchemaNode | null;
  }
  | { kind: "array"; id: number; items: SchemaNode; min: number; max: number }
  | { kind: "string"; id: number; min: number; max: number }
  | { kind: "number" | "integer"; id: number }
  | { kind: "literal"; id: number; bytes: Uint8Array; text: string };

/** A declared property of an object node, in the schema's order. */
export interface SchemaProperty {
  /** The property's name. */
  name: string;
  /** Its key as JSON text, quotes included (`"age"`). */
  key: Extract<SchemaNode, { kind: "literal" }>;
  /** Its value's node. */
  node: SchemaNode;
  /** Whether it must appear. */
  required: boolean;
}

/** A compiled schema: its root node, a key naming it in mask caches, its recognisers. */
export interface CompiledJsonSchema {
  /** The top-level value's node. */
  readonly root: SchemaNode;
  /** A hash of the schema's JSON text: equal schemas share cached token masks. */
  readonly key: string;
  /** A recogniser at the start of a document (for `JsonConstraint`). */
  recognizer(): JsonSchemaRecognizer;
}

const ANNOTATIONS = new Set([
  "title",
  "description",
  "default",
  "examples",
  "$schema",
  "$id",
  "$comment",
  "deprecated",
  "readOnly",
  "writeOnly",
]);
const KEYWORDS = new Set([
  "type",
  "nullable",
  "properties",
  "required",
  "additionalProperties",
  "enum",
  "const",
  "items",
  "minItems",
  "maxItems",
  "minLength",
  "maxLength",
  "anyOf",
  "oneOf",
  "$ref",
  "$defs",
  "definitions",
]);
const TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"];
const OBJECT_KEYS = ["properties", "required", "additionalProperties"];
const ARRAY_KEYS = ["items", "minItems", "maxItems"];
const STRING_KEYS = ["minLength", "maxLength"];

type Obj = Record<string, unknown>;
const enc = new TextEncoder();
const show = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? s.slice(0, 37) + "..." : s;
};
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** Two 32-bit FNV-1a hashes of a string (different offsets), as 16 hex digits. */
function hash(s: string): string {
  let a = 0x811c9dc5, b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x01000193 + 2) >>> 0;
  }
  return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
}

/**
 * Compiles a JSON Schema (the subset in the module doc) for
 * {@linkcode JsonSchemaRecognizer}.
 *
 * @param schema The schema (parsed JSON: an object, or `true`).
 * @param path How errors name the schema's root (default `schema`; the server passes
 *   `response_format.json_schema.schema`).
 * @returns The compiled schema.
 * @throws {JsonSchemaError} for a keyword outside the subset or a malformed value, naming
 *   its path: `schema.properties.age: 'minimum' is not supported`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compileJsonSchema } from "./json_schema.ts";
 * const s = compileJsonSchema({ type: "object", properties: { a: { type: "integer" } } });
 * assert.equal(s.root.kind, "object");
 * assert.throws(
 *   () => compileJsonSchema({ properties: { a: { type: "string", pattern: "^x" } } }),
 *   /^JsonSchemaError: schema\.properties\.a: 'pattern' is not supported/,
 * );
 * ```
 */
export function compileJsonSchema(schema: unknown, path = "schema"): CompiledJsonSchema {
  const compiled: CompiledJsonSchema = {
    root: new Compiler(schema, path).root,
    key: hash(JSON.stringify(schema) ?? ""),
    recognizer: () => new JsonSchemaRecognizer(compiled),
  };
  return compiled;
}

/** One compilation: node numbering, `$ref` resolution. */
class Compiler {
  #id = 0;
  #refs = new Map<string, Extract<SchemaNode, { kind: "alt" }>>();
  readonly root: SchemaNode;

  constructor(readonly schema: unknown, readonly path: string) {
    this.root = this.node(schema, path);
    this.#checkCycles(this.root, new Set(), new Set());
  }

  #fail(path: string, what: string): never {
    throw new JsonSchemaError(path, what);
  }

  #literal(value: unknown): Extract<SchemaNode, { kind: "literal" }> {
    const text = JSON.stringify(value);
    return { kind: "literal", id: this.#id++, bytes: enc.encode(text), text };
  }

  #alt(alts: SchemaNode[]): SchemaNode {
    return alts.length === 1 ? alts[0] : { kind: "alt", id: this.#id++, alts };
  }

  /** A non-negative integer keyword, or `dflt` when absent. */
  #count(s: Obj, key: string, path: string, dflt: number): number {
    const v = s[key];
    if (v === undefined) return dflt;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      this.#fail(`${path}.${key}`, `must be a non-negative integer, got ${show(v)}`);
    }
    return v;
  }

  /** Compiles the schema at `path`. */
  node(s: unknown, path: string): SchemaNode {
    if (s === true) return this.#any();
    if (!isObj(s)) {
      this.#fail(path, `a schema must be an object or true, got ${show(s)}`);
    }
    for (const key of Object.keys(s)) {
      if (!KEYWORDS.has(key) && !ANNOTATIONS.has(key)) {
        this.#fail(path, `'${key}' is not supported`);
      }
    }
    const keys = Object.keys(s).filter((k) =>
      KEYWORDS.has(k) && k !== "$defs" &&
      k !== "definitions"
    );
    if (s.$ref !== undefined) {
      if (keys.length > 1) {
        this.#fail(path, `'$ref' with ${keys.filter((k) => k !== "$ref")} is not supported`);
      }
      return this.#ref(s.$ref, `${path}.$ref`);
    }
    const choice = s.anyOf !== undefined ? "anyOf" : s.oneOf !== undefined ? "oneOf" : null;
    if (choice) {
      const others = keys.filter((k) => k !== choice);
      if (others.length > 0) {
        this.#fail(path, `'${choice}' with ${others} is not supported (put them in each branch)`);
      }
      const list = s[choice];
      if (!Array.isArray(list) || list.length === 0) {
        this.#fail(`${path}.${choice}`, `must be a non-empty array, got ${show(list)}`);
      }
      return this.#alt(list.map((b, i) => this.node(b, `${path}.${choice}[${i}]`)));
    }
    const rest = this.#typed(s, path);
    if (s.const !== undefined && s.enum !== undefined) {
      this.#fail(path, "'const' with 'enum' is not supported");
    }
    if (s.const === undefined && s.enum === undefined) return rest;
    const where = s.const !== undefined ? `${path}.const` : `${path}.enum`;
    const values = s.const !== undefined ? [s.const] : s.enum;
    if (!Array.isArray(values) || values.length === 0) {
      this.#fail(where, `must be a non-empty array, got ${show(values)}`);
    }
    const kept = values.filter((v) => matches(rest, v));
    if (kept.length === 0) {
      this.#fail(where, `no value is valid for the rest of the schema (${show(values)})`);
    }
    return this.#alt(kept.map((v) => this.#literal(v)));
  }

  /** Any JSON value (`{}`, `true`). */
  #any(): SchemaNode {
    const any = { kind: "alt" as const, id: this.#id++, alts: [] as SchemaNode[] };
    const str: SchemaNode = { kind: "string", id: this.#id++, min: 0, max: Infinity };
    any.alts.push(
      { kind: "object", id: this.#id++, props: [], lastRequired: -1, extra: any },
      { kind: "array", id: this.#id++, items: any, min: 0, max: Infinity },
      str,
      { kind: "number", id: this.#id++ },
      this.#literal(true),
      this.#literal(false),
      this.#literal(null),
    );
    return any;
  }

  /** The node of `type` (or the implied type) with its keywords; `enum`/`const` aside. */
  #typed(s: Obj, path: string): SchemaNode {
    let types: string[];
    if (s.type === undefined) {
      types = [];
      if (OBJECT_KEYS.some((k) => k in s)) types.push("object");
      if (ARRAY_KEYS.some((k) => k in s)) types.push("array");
      if (STRING_KEYS.some((k) => k in s)) types.push("string");
      if (types.length === 0) return this.#any();
    } else {
      types = Array.isArray(s.type) ? s.type : [s.type];
      if (types.length === 0) this.#fail(`${path}.type`, "must not be an empty list");
      for (const t of types) {
        if (typeof t !== "string" || !TYPES.includes(t)) {
          this.#fail(
            `${path}.type`,
            `must be one of ${TYPES.join(", ")} (or a list), got ${show(t)}`,
          );
        }
      }
    }
    if (s.nullable !== undefined && typeof s.nullable !== "boolean") {
      this.#fail(`${path}.nullable`, `must be a boolean, got ${show(s.nullable)}`);
    }
    if (s.nullable === true && !types.includes("null")) types = [...types, "null"];
    const alts: SchemaNode[] = [];
    for (const t of new Set(types)) {
      if (t === "object") alts.push(this.#object(s, path));
      else if (t === "array") {
        const min = this.#count(s, "minItems", path, 0);
        const max = this.#count(s, "maxItems", path, Infinity);
        if (min > max) this.#fail(path, `minItems ${min} > maxItems ${max}`);
        if (Array.isArray(s.items)) {
          this.#fail(`${path}.items`, "a list of schemas (a tuple) is not supported");
        }
        const items = s.items === undefined ? this.#any() : this.node(s.items, `${path}.items`);
        alts.push({ kind: "array", id: this.#id++, items, min, max });
      } else if (t === "string") {
        const min = this.#count(s, "minLength", path, 0);
        const max = this.#count(s, "maxLength", path, Infinity);
        if (min > max) this.#fail(path, `minLength ${min} > maxLength ${max}`);
        alts.push({ kind: "string", id: this.#id++, min, max });
      } else if (t === "number" || t === "integer") alts.push({ kind: t, id: this.#id++ });
      else if (t === "boolean") alts.push(this.#literal(true), this.#literal(false));
      else alts.push(this.#literal(null));
    }
    return this.#alt(alts);
  }

  #object(s: Obj, path: string): SchemaNode {
    const props = s.properties ?? {};
    if (!isObj(props)) this.#fail(`${path}.properties`, `must be an object, got ${show(props)}`);
    const required = s.required ?? [];
    if (!Array.isArray(required) || required.some((r) => typeof r !== "string")) {
      this.#fail(`${path}.required`, `must be an array of strings, got ${show(required)}`);
    }
    for (const r of required) {
      if (!Object.hasOwn(props, r)) {
        this.#fail(
          `${path}.required`,
          `'${r}' is not in 'properties' (extra properties are not allowed)`,
        );
      }
    }
    const ap = s.additionalProperties;
    let extra: SchemaNode | null = null;
    if (ap !== undefined && ap !== false) {
      if (Object.keys(props).length > 0) {
        this.#fail(
          `${path}.additionalProperties`,
          `${show(ap)} next to 'properties' is not supported (only false)`,
        );
      }
      extra = this.node(ap, `${path}.additionalProperties`);
    }
    const list: SchemaProperty[] = Object.entries(props).map(([name, p]) => ({
      name,
      key: this.#literal(name),
      node: this.node(p, `${path}.properties.${name}`),
      required: required.includes(name),
    }));
    const lastRequired = list.findLastIndex((p) => p.required);
    return { kind: "object", id: this.#id++, props: list, lastRequired, extra };
  }

  /** A `$ref` (`#`, `#/$defs/NAME`, `#/definitions/NAME`), compiled once. */
  #ref(ref: unknown, path: string): SchemaNode {
    if (typeof ref !== "string") this.#fail(path, `must be a string, got ${show(ref)}`);
    let node = this.#refs.get(ref);
    if (node) return node;
    let target: unknown, where: string;
    const m = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref);
    if (ref === "#") [target, where] = [this.schema, this.path];
    else if (m) {
      const name = m[2].replaceAll("~1", "/").replaceAll("~0", "~");
      const defs = isObj(this.schema) ? this.schema[m[1]] : undefined;
      if (!isObj(defs) || !Object.hasOwn(defs, name)) {
        this.#fail(path, `'${ref}' is not defined in the schema's '${m[1]}'`);
      }
      [target, where] = [defs[name], `${this.path}.${m[1]}.${name}`];
    } else {
      this.#fail(
        path,
        `'${ref}' is not supported (only '#', '#/$defs/NAME', '#/definitions/NAME')`,
      );
    }
    // A placeholder first, so that a recursive reference finds it.
    node = { kind: "alt", id: this.#id++, alts: [], ref };
    this.#refs.set(ref, node);
    node.alts.push(this.node(target, where));
    return node;
  }

  /** Refuses a `$ref` cycle that reads no byte (an object or array) on its way round. */
  #checkCycles(n: SchemaNode, onPath: Set<SchemaNode>, done: Set<SchemaNode>): void {
    if (done.has(n)) return;
    if (n.kind !== "alt") {
      done.add(n); // a container reads a byte before its members: a fresh path below it
      if (n.kind === "object") {
        for (const p of n.props) this.#checkCycles(p.node, new Set(), done);
        if (n.extra) this.#checkCycles(n.extra, new Set(), done);
      } else if (n.kind === "array") this.#checkCycles(n.items, new Set(), done);
      return;
    }
    if (onPath.has(n)) {
      const ref = [...onPath, n].find((x) => x.kind === "alt" && x.ref) as { ref?: string };
      this.#fail(
        this.path,
        `'$ref' '${ref?.ref}' refers to itself without an object or array between`,
      );
    }
    onPath.add(n);
    for (const a of n.alts) this.#checkCycles(a, onPath, done);
    onPath.delete(n);
    done.add(n);
  }
}

/**
 * Whether a parsed JSON value is valid for a node, ignoring property order (the check of
 * `enum` values against the rest of their schema).
 *
 * @param node A compiled node.
 * @param v A JSON value.
 * @returns Whether it is valid.
 */
export function matches(node: SchemaNode, v: unknown): boolean {
  switch (node.kind) {
    case "alt":
      return node.alts.some((a) => matches(a, v));
    case "literal":
      return JSON.stringify(v) === node.text;
    case "number":
      return typeof v === "number";
    case "integer":
      return Number.isInteger(v);
    case "string": {
      if (typeof v !== "string") return false;
      const n = [...v].length;
      return n >= node.min && n <= node.max;
    }
    case "array":
      return Array.isArray(v) && v.length >= node.min && v.length <= node.max &&
        v.every((x) => matches(node.items, x));
    case "object": {
      if (!isObj(v)) return false;
      const byName = new Map(node.props.map((p) => [p.name, p]));
      for (const [k, x] of Object.entries(v)) {
        const p = byName.get(k);
        if (p ? !matches(p.node, x) : !node.extra || !matches(node.extra, x)) return false;
      }
      return node.props.every((p) => !p.required || Object.hasOwn(v, p.name));
    }
  }
}
