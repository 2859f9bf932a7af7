#!/usr/bin/env bash
# Runs each fuzz target for a time budget (default 60 s each), starting from
# the seed corpus. Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable
# toolchain RUSTC_BOOTSTRAP=1 unlocks the sanitizer flags it uses.
set -euo pipefail
cd "$(dirname "$0")"
budget=${1:-60}
export RUSTC_BOOTSTRAP=${RUSTC_BOOTSTRAP:-1}
for target in frame_header session login delta; do
  mkdir -p "corpus/$target"
  cp -n seeds/* "corpus/$target/" 2>/dev/null || true
  cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$budget" -max_len=4096
done
