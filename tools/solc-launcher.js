#!/usr/bin/env node
// A `solc`-compatible command line around solc-js (the official compiler built to WebAssembly), so
// py-solc-x / ape-solidity / forge can use it offline. It supports exactly what those tools call:
//   solc --version
//   solc --standard-json [--base-path P] [--include-path P]... [--allow-paths P,...]  (stdin -> stdout)
// Imports are resolved against the base path, the include paths and the allowed paths; nothing else is read.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

function parseArgs(argv) {
  const opts = { standardJson: false, version: false, roots: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (a.includes('=')) return a.slice(a.indexOf('=') + 1);
      i += 1;
      return argv[i];
    };
    if (a === '--version' || a === '-v') opts.version = true;
    else if (a === '--standard-json') opts.standardJson = true;
    else if (a.startsWith('--base-path')) opts.roots.unshift(value());
    else if (a.startsWith('--include-path')) opts.roots.push(value());
    else if (a.startsWith('--allow-paths')) opts.roots.push(...value().split(',').filter(Boolean));
    else if (a.startsWith('--')) { /* flags solc-js has no use for (e.g. --no-color) */ }
  }
  return opts;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return 0;
  }
  if (!opts.standardJson) {
    process.stderr.write('solc-launcher: only --version and --standard-json are supported\n');
    return 2;
  }
  const input = fs.readFileSync(0, 'utf8');
  const roots = opts.roots.length ? opts.roots : [process.cwd()];
  const findImports = (importPath) => {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : roots.map((r) => path.resolve(r, importPath));
    for (const c of candidates) {
      if (fs.existsSync(c) && fs.statSync(c).isFile()) return { contents: fs.readFileSync(c, 'utf8') };
    }
    return { error: `File not found: ${importPath} (searched ${roots.join(', ')})` };
  };
  process.stdout.write(solc.compile(input, { import: findImports }));
  return 0;
}

process.exitCode = main();
