#!/usr/bin/env bash
# Runs every check of mailbridge: formatting, lints, the SAM template, and all tests.
# Installs what it needs (SAM CLI, cfn-lint and moto from PyPI into .venv) on first use, and
# starts a moto server (an AWS emulator) for the AWS adapter tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/sam ] || [ ! -x .venv/bin/cfn-lint ] || [ ! -x .venv/bin/moto_server ] \
  || [ ! -x .venv/bin/cargo-lambda ] || ! .venv/bin/python -c 'import selenium' 2>/dev/null \
  || [ ! -x .venv/bin/schemathesis ]; then
  echo "== installing aws-sam-cli, cfn-lint, moto, cargo-lambda (with its zig), selenium and schemathesis into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check aws-sam-cli cfn-lint "moto[server]" \
    cargo-lambda selenium schemathesis
fi
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "== installing Debian's chromium and chromium-driver (the console's browser test)"
  apt_get() { if [ "$(id -u)" = 0 ]; then apt-get "$@"; else sudo apt-get "$@"; fi; }
  apt_get install -y -q chromium chromium-driver > /dev/null \
    || { apt_get update -q > /dev/null && apt_get install -y -q chromium chromium-driver > /dev/null; }
fi
if [ ! -f .venv/axe-core/axe.min.js ]; then
  echo "== fetching axe-core from npm (the browser test's accessibility audit)"
  axe_tmp=$(mktemp -d)
  (cd "$axe_tmp" && npm pack --silent axe-core@4.14.1 > /dev/null && tar xzf axe-core-4.14.1.tgz)
  mkdir -p .venv/axe-core && cp "$axe_tmp/package/axe.min.js" .venv/axe-core/ && rm -rf "$axe_tmp"
fi
if [ ! -x .venv/jco/node_modules/.bin/jco ]; then
  echo "== installing jco from npm (the wasi:http host that serves the webhook component)"
  npm install --silent --no-audit --no-fund --prefix .venv/jco @bytecodealliance/jco@1.35.0
fi
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "== rustup target add wasm32-wasip2 (the WebAssembly components)"
  rustup target add wasm32-wasip2
fi
export SAM_CLI_TELEMETRY=0
# A cold run builds everything once: incremental caches would only cost time and several GB of disk
# (a CI machine's disk filled up once while linking). Set CARGO_INCREMENTAL=1 to keep them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== the core and the webhook and import components for wasm32-wasip2: cargo clippy"
cargo clippy -p mailbridge-core --target wasm32-wasip2 -- -D warnings
cargo clippy -p mailbridge-webhook --no-default-features --features component \
  --target wasm32-wasip2 --bins -- -D warnings
cargo clippy -p mailbridge-import --no-default-features --features component \
  --target wasm32-wasip2 --bins -- -D warnings
echo "== template: sam validate --lint, cfn-lint"
.venv/bin/sam validate --lint --region us-east-1 -t template.yaml
.venv/bin/cfn-lint template.yaml
echo "== the binaries, for the tests that run them (serve, the deployed shape)"
cargo build --workspace --bins
cargo build -p mailbridge-webhook --no-default-features --features component \
  --target wasm32-wasip2 --bin mailbridge-webhook-component
cargo build -p mailbridge-import --no-default-features --features component \
  --target wasm32-wasip2 --bin mailbridge-import-component
echo "== cargo test"
cargo test --workspace
echo "== the reduced soak: 2,000 messages, 10 mailboxes, the faults together (tests/benches/soak.rs)"
cargo bench -p mailbridge-tests --bench soak --profile dev -- --reduced
echo "== the console in Chromium (screenshots in target/screenshots)"
mkdir -p target/screenshots
.venv/bin/python tests/web/console.py target/debug/mailbridge-local target/screenshots \
  .venv/axe-core/axe.min.js
echo "== the admin API against docs/openapi.yaml (schemathesis: conformance, bad input, no 5xx)"
.venv/bin/python tests/web/api.py target/debug/mailbridge-local docs/openapi.yaml

echo "== AWS adapters, the deployed shape and the webhook and import components against moto"
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_log=$(mktemp)
.venv/bin/moto_server -H 127.0.0.1 -p "$port" > "$moto_log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true; rm -f "$moto_log"' EXIT
.venv/bin/python - "$port" "$moto_log" <<'PY'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("moto did not start:\n" + open(sys.argv[2]).read())
PY
AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_REGION=us-east-1 cargo test -p mailbridge-tests --features moto --test aws --test aws_shape

MAILBRIDGE_QUICK_RELEASE=1 scripts/sam-build.sh
