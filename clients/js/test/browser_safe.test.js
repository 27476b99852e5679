// The client must load in a browser (the debug panel uses it there): the modules it imports
// statically name no Node built-in, and the one Node-only module (./node.js) is imported on
// demand, by `connect({ dataDir })` alone.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const source = (file) => readFileSync(new URL(`../src/${file}`, import.meta.url), "utf8");

/** The modules `file` imports statically, and those it imports through `import()`. */
function imports(file) {
  const text = source(file);
  const statics = [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms)].map((m) => m[1]);
  const dynamics = [...text.matchAll(/import\(\s*"([^"]+)"\s*\)/g)].map((m) => m[1]);
  return { statics, dynamics };
}

test("the client's static imports stay inside the browser-safe files", () => {
  const seen = new Set();
  const visit = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const target of imports(file).statics) {
      assert.ok(target.startsWith("./"), `${file} imports ${target}`);
      visit(target.slice(2));
    }
  };
  visit("index.js");
  assert.deepEqual([...seen].sort(), ["index.js", "protocol.js", "sse.js"]);
  for (const file of seen) assert.doesNotMatch(source(file), /\brequire\(|\bprocess\.(?!versions)/, file);
});

test("node.js is only imported on demand", () => {
  assert.deepEqual([...new Set(imports("index.js").dynamics)], ["./node.js"]);
});
