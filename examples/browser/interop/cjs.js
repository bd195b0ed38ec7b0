// A minimal CommonJS loader for the interop pages: loads an npm package's
// CommonJS build and its dependencies from /npm/ (node_modules served by the
// test), without a bundler. Only what @eyevinn/whip-web-client needs.
"use strict";
const cjsCache = {};
const cjsPackages = {
  "events": "/npm/events/events.js",
  "sdp-transform": "/npm/sdp-transform/lib/index.js",
};
function cjsResolve(name, dir) {
  if (cjsPackages[name]) return cjsPackages[name];
  if (name.startsWith("./") || name.startsWith("../")) {
    const u = new URL(name, "http://x" + dir).pathname;
    return u.endsWith(".js") ? u : u + ".js";
  }
  throw new Error("cjs: unknown module " + name);
}
function cjsLoad(path) {
  if (cjsCache[path]) return cjsCache[path].exports;
  const x = new XMLHttpRequest();
  x.open("GET", path, false);
  x.send();
  if (x.status !== 200) throw new Error("cjs: " + path + ": " + x.status);
  const module = { exports: {} };
  cjsCache[path] = module;
  const dir = path.slice(0, path.lastIndexOf("/") + 1);
  new Function("module", "exports", "require", x.responseText)(module, module.exports, (n) => cjsLoad(cjsResolve(n, dir)));
  return module.exports;
}
