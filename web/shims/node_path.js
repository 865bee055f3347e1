// node:path in gollm's browser build (web/bundle_imports.json maps it here inside the bundle):
// a page has no file paths, so nothing reachable from a page calls these; each says so if
// something does.
const none = (name) => () => {
  throw new Error(`node:path ${name}(): a browser has no file paths; pass a URL or the bytes`);
};
export const sep = "/";
export const basename = none("basename");
export const dirname = none("dirname");
export const isAbsolute = none("isAbsolute");
export const join = none("join");
export const resolve = none("resolve");
