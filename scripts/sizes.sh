#!/usr/bin/env bash
# Prints each Lambda function's bootstrap size (release profile, host target), each built on its
# own as `sam build` builds it, so that its crates' features are its own. The figures are in
# BENCHMARKS.md. Usage: scripts/sizes.sh [function ...]
set -euo pipefail
cd "$(dirname "$0")/.."
functions=("$@")
[ ${#functions[@]} -gt 0 ] || functions=(oauth webhook import maintenance admin)
printf '%-12s %12s %12s\n' function bytes gzip-9
for f in "${functions[@]}"; do
  cargo build --quiet --release -p "mailbridge-$f"
  bin="target/release/mailbridge-$f"
  printf '%-12s %12d %12d\n' "$f" "$(stat -c %s "$bin")" "$(gzip -9 -c "$bin" | wc -c)"
done
