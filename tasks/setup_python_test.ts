import assert from "node:assert/strict";
import { localPipSource } from "./setup_python.ts";

Deno.test("localPipSource() finds file:, path and localhost sources in pip config list", () => {
  const listed = [
    ":env:.cert='/etc/ssl/certs/ca-certificates.crt'", // a path, but not a package source
    ":env:.default-timeout='180'",
    "global.extra-index-url='https://example.org/simple file:///opt/pypi/simple'",
  ].join("\n");
  assert.equal(localPipSource(listed), "file:///opt/pypi/simple");
  assert.equal(localPipSource(":env:.find-links='/opt/wheels'"), "/opt/wheels");
  assert.equal(localPipSource("user.find-links='./wheels'"), "./wheels");
  assert.equal(
    localPipSource("global.index-url='http://localhost:8080/simple'"),
    "http://localhost:8080/simple",
  );
  assert.equal(
    localPipSource("site.index-url='http://127.0.0.1/simple'"),
    "http://127.0.0.1/simple",
  );
});

Deno.test("localPipSource() is null without a local source", () => {
  assert.equal(localPipSource(""), null);
  assert.equal(localPipSource("global.index-url='https://pypi.org/simple'"), null);
  assert.equal(
    localPipSource("global.extra-index-url='https://localhost.example.com/simple'"),
    null,
  );
  assert.equal(localPipSource(":env:.cert='/etc/ssl/certs/ca.crt'"), null);
});
