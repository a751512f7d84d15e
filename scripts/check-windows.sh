#!/usr/bin/env bash
# Type-checks the workspace for Windows (x86_64-pc-windows-gnu) from Linux:
# the data crate's portability check of issue #18, and everything above it.
#
# Needs the Rust target and a MinGW C compiler (zstd-sys, under hdf5-pure,
# compiles C for the target); both are installed here when missing.
# torch-sys's build script would look for a Windows libtorch, which this
# machine does not have, so its link line is given instead
# (`target.<triple>.tch.rustc-link-lib`): nothing is linked by a check.
# forge-core's build script skips its C++ shim when cross-compiling.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARGET=x86_64-pc-windows-gnu

if ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET"
fi
if ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
    if command -v apt-get >/dev/null; then
        sudo_cmd=""
        [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q gcc-mingw-w64-x86-64
    else
        echo "error: x86_64-w64-mingw32-gcc is missing; install MinGW-w64 for $TARGET" >&2
        exit 1
    fi
fi
bash scripts/setup.sh >/dev/null
cargo check --workspace --lib --bins --target "$TARGET" \
    --config "target.$TARGET.tch.rustc-link-lib=[\"torch\"]"
echo "windows check: ok ($TARGET)"
