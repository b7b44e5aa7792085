#!/usr/bin/env bash
# Installs the `solc` that py-solc-x / ape-solidity find: $SOLCX_BINARY_PATH/solc-v<version>.
# Prefers a native solc of the pinned version when one is on PATH; otherwise a launcher around
# solc-js from node_modules (works offline; py-solc-x's own downloader cannot reach its servers here).
set -euo pipefail
version="$1"
dest="$2"
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$dest"
target="$dest/solc-v$version"
if command -v solc >/dev/null 2>&1 && solc --version 2>/dev/null | grep -q "Version: $version+commit"; then
  ln -sf "$(command -v solc)" "$target"
  echo "solc: native $(command -v solc) -> $target"
  exit 0
fi
js_version="$(node -e "process.stdout.write(require('$root/node_modules/solc').version())")"
case "$js_version" in
  "$version+commit."*) ;;
  *) echo "install-solc: node_modules/solc is $js_version, expected $version (run npm ci)" >&2; exit 1 ;;
esac
cat > "$target" <<SH
#!/bin/sh
exec node "$root/tools/solc-launcher.js" "\$@"
SH
chmod +x "$target"
echo "solc: solc-js $js_version launcher -> $target"
