#!/usr/bin/env bash
# Builds the deploytime CLI as a static Linux binary for x86_64-unknown-linux-musl,
# the way .github/workflows/release.yml builds the release asset, then checks that
# it is statically linked and that it runs.
#
#   bash .ci/checks/musl.sh
#
# Needs: the Rust toolchain pinned in rust-toolchain.toml with rustup, root (or
# sudo) to apt-get install musl-tools and file. The Rust standard library for the
# musl target comes from `rustup target add`. Debian's libstd-rust-dev builds
# match Debian's own rustc, not the pinned one, so they are no substitute.
#
# Exit status: 0 when the binary was built and passed the checks, and also, with
# a line saying so, in exactly one other case: rustup could not download the musl
# target's standard library (a machine that cannot reach the Rust distribution
# server cannot build for the target at all). Anything else that fails is a
# failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
TARGET=x86_64-unknown-linux-musl
# A target directory of its own: the musl build shares nothing with the host one.
export CARGO_TARGET_DIR="${MUSL_TARGET_DIR:-$ROOT/target-musl}"
export CARGO_TERM_COLOR=never

log() { printf '\n=== %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v musl-gcc >/dev/null || missing+=(musl-tools)
command -v file >/dev/null || missing+=(file)
command -v readelf >/dev/null || missing+=(binutils)
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

log "Rust standard library for $TARGET"
if ! rustup target list --installed | grep -qx "$TARGET"; then
  if ! command -v rustup >/dev/null; then
    echo "musl: rustup is not installed, so the $TARGET standard library cannot be added"
    exit 1
  fi
  set +e
  out=$(rustup target add "$TARGET" 2>&1)
  rc=$?
  set -e
  echo "$out"
  if [[ $rc -ne 0 ]]; then
    # The one case that is not a failure of this repository: the download itself.
    if grep -qiE 'could not download|download failed|error sending request|failed to (connect|resolve)|timed out|dns error' <<<"$out"; then
      echo "musl: SKIPPED, not built: rustup could not download the $TARGET standard library"
      echo "musl: (the Rust distribution server is out of reach from this machine; see the rustup output above)"
      exit 0
    fi
    echo "musl: rustup target add $TARGET failed (exit $rc)"
    exit 1
  fi
fi
rustc --version

log "cargo build --release --locked -p deploytime-cli --target $TARGET"
# The same flags as the release workflow: musl-gcc compiles ring's C and assembly,
# and Rust links its own self-contained musl C runtime, so the result is static.
export CC_x86_64_unknown_linux_musl=musl-gcc
cargo build --release --locked -p deploytime-cli --target "$TARGET"
BIN=$CARGO_TARGET_DIR/$TARGET/release/deploytime

log "checks on $BIN"
ls -l "$BIN"
desc=$(file -b "$BIN")
echo "file: $desc"
if ! grep -qE 'statically linked|static-pie linked' <<<"$desc"; then
  echo "musl: FAIL: file does not say the binary is statically linked"
  exit 1
fi
# ldd exits non-zero for a binary that has no dynamic dependencies.
ldd_out=$(ldd "$BIN" 2>&1 || true)
echo "ldd: $ldd_out"
if ! grep -qE 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
  echo "musl: FAIL: ldd lists dynamic dependencies"
  exit 1
fi
if readelf -d "$BIN" | grep -q '(NEEDED)'; then
  readelf -d "$BIN" | grep '(NEEDED)'
  echo "musl: FAIL: the binary needs shared libraries"
  exit 1
fi
version=$("$BIN" --version)
echo "--version: $version"
want="deploytime $(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
if [[ $version != "$want" ]]; then
  echo "musl: FAIL: expected \"$want\""
  exit 1
fi
echo "musl: $TARGET build of deploytime is static and runs"
