#!/usr/bin/env bash
# One setup path for a fresh machine, used by both README commands and by .ci/run.
#
# - Creates `.venv` with torch==2.13.0 (the libtorch that tch 0.26 links against).
#   The install is ~5 GB, so it lives once per machine in a versioned folder under
#   the user's cache and every checkout's `.venv` is a symlink to it.
#   `.venv/libtorch` points at the torch package; `.cargo/config.toml` hands it to
#   the build as LIBTORCH.
# - Fetches the embedded default dataset (10x_pbmc68k_reduced.h5ad, shipped inside
#   the scanpy wheel) into data/ and verifies its checksum.
#
# Idempotent: every step is skipped when its result is already present and right.
set -euo pipefail

TORCH_VERSION=2.13.0
SCANPY_VERSION=1.11.5
PBMC_SHA256=e71d41e737c941559b7c57c9243bdb3d2c889c2adfdf00e3422ac6b46783676f
PY_PACKAGES=("torch==$TORCH_VERSION" "numpy" "safetensors" "anndata" "scipy" "omegaconf" "tensorboard" "transformers")

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/forge"
python="${FORGE_PYTHON:-python3}"
say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

command -v "$python" >/dev/null || die "no $python on PATH; install Python 3.10+ or set FORGE_PYTHON"
pyver="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
venv="$cache/venv-torch-$TORCH_VERSION-py$pyver"
mkdir -p "$cache"

torch_ok() {
  [ -f "$venv/.forge-complete" ] && "$venv/bin/python" - "$TORCH_VERSION" <<'PY' 2>/dev/null
import sys, torch
ok = torch.__version__.split("+")[0] == sys.argv[1] and torch._C._GLIBCXX_USE_CXX11_ABI
sys.exit(0 if ok else 1)
PY
}

# --- torch in a shared, versioned venv ------------------------------------
if ! torch_ok; then
  # Serialise concurrent setups: two clones setting up at once share one install.
  exec 9>"$cache/.venv.lock"
  flock 9
  if ! torch_ok; then
    say "installing ${PY_PACKAGES[*]} into $venv (one time, ~5 GB)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}" \
      || die "pip could not install ${PY_PACKAGES[*]} (see pip's message above)"
    touch "$venv/.forge-complete"
    torch_ok || die "$venv: torch is not $TORCH_VERSION with the C++11 ABI that tch expects"
  fi
  exec 9>&-
fi

# Packages added to PY_PACKAGES after the venv was made are installed here
# (each one's import name is its package name).
missing=()
for pkg in "${PY_PACKAGES[@]:1}"; do
  "$venv/bin/python" -c "import $pkg" 2>/dev/null || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  exec 9>"$cache/.venv.lock"
  flock 9
  say "installing ${missing[*]} into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${missing[@]}" \
    || die "pip could not install ${missing[*]} (see pip's message above)"
  exec 9>&-
fi

torch_dir="$("$venv/bin/python" -c 'import torch, os; print(os.path.dirname(torch.__file__))')"
ln -sfn "$torch_dir" "$venv/libtorch"
# torch-sys checks `build-version` when it exists; the pip package has none.
[ -f "$torch_dir/build-version" ] || echo "$TORCH_VERSION" > "$torch_dir/build-version"

if [ "$(readlink "$root/.venv" 2>/dev/null)" != "$venv" ]; then
  if [ -e "$root/.venv" ] && [ ! -L "$root/.venv" ]; then
    die "$root/.venv exists and is not forge's symlink; move it away and re-run"
  fi
  ln -sfn "$venv" "$root/.venv"
  say ".venv -> $venv"
fi

# --- embedded default dataset ---------------------------------------------
data="$root/data/pbmc68k_reduced.h5ad"
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$PBMC_SHA256" ]; }
if ! sha_ok "$data"; then
  say "fetching 10x_pbmc68k_reduced.h5ad from the scanpy==$SCANPY_VERSION wheel"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: -d "$tmp" "scanpy==$SCANPY_VERSION" \
    || die "could not download the scanpy==$SCANPY_VERSION wheel from PyPI"
  "$venv/bin/python" - "$tmp" <<'PY'
import glob, os, sys, zipfile
tmp = sys.argv[1]
wheel = glob.glob(os.path.join(tmp, "scanpy-*.whl"))[0]
with zipfile.ZipFile(wheel) as z, open(os.path.join(tmp, "pbmc.h5ad"), "wb") as dst:
    dst.write(z.read("scanpy/datasets/10x_pbmc68k_reduced.h5ad"))
PY
  sha_ok "$tmp/pbmc.h5ad" || die "checksum mismatch for 10x_pbmc68k_reduced.h5ad: expected $PBMC_SHA256, got $(sha256sum "$tmp/pbmc.h5ad" | cut -d' ' -f1)"
  mkdir -p "$root/data"
  mv "$tmp/pbmc.h5ad" "$data"
  say "dataset ready: $data"
fi
