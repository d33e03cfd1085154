#!/usr/bin/env bash
# Runs every check of mailbridge: formatting, lints, the SAM template, and all tests.
# Installs what it needs (SAM CLI and cfn-lint from PyPI into .venv) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/sam ] || [ ! -x .venv/bin/cfn-lint ]; then
  echo "== installing aws-sam-cli and cfn-lint into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check aws-sam-cli cfn-lint
fi
export SAM_CLI_TELEMETRY=0

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== template: sam validate --lint, cfn-lint"
.venv/bin/sam validate --lint --region us-east-1 -t template.yaml
.venv/bin/cfn-lint template.yaml
echo "== cargo test"
cargo test --workspace
