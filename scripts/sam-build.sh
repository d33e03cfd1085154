#!/usr/bin/env bash
# Builds every function as `sam build` does for deployment: BuildMethod rust-cargolambda, arm64,
# provided.al2023, cargo-lambda (from PyPI, with its own zig) cross-compiling, and prints each
# bootstrap's size and its deployment zip's size.
#
# scripts/test.sh runs it with MAILBRIDGE_QUICK_RELEASE=1: the same build with the release profile
# lightened (no LTO, opt-level 1, 16 codegen units), which checks that SAM builds every function
# for arm64 in a third of the time; a deployment (`sam build` as the README says) uses the full
# profile, whose sizes BENCHMARKS.md records.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/sam ] && [ -x .venv/bin/cargo-lambda ] || {
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check aws-sam-cli cargo-lambda
}
rustup target list --installed | grep -q '^aarch64-unknown-linux-gnu$' \
  || rustup target add aarch64-unknown-linux-gnu
export PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0
if [ "${MAILBRIDGE_QUICK_RELEASE:-0}" = 1 ]; then
  export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
fi
echo "== sam build (arm64)"
sam build --config-file infra/samconfig.toml
printf '%-22s %12s %12s\n' function bootstrap zip
for dir in .aws-sam/build/*Function; do
  bootstrap="$dir/bootstrap"
  # ELF's e_machine (bytes 18-19, little-endian): 183 is AArch64.
  python3 -c 'import sys; h = open(sys.argv[1], "rb").read(20)
sys.exit(0 if h[:4] == b"\x7fELF" and int.from_bytes(h[18:20], "little") == 183 else 1)' "$bootstrap" \
    || { echo "$bootstrap is not an arm64 executable"; exit 1; }
  zip_size=$(cd "$dir" && python3 -c 'import io, sys, zipfile
b = io.BytesIO()
with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.write("bootstrap")
print(len(b.getvalue()))')
  printf '%-22s %12d %12d\n' "$(basename "$dir")" "$(stat -c %s "$bootstrap")" "$zip_size"
done
