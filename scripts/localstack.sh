#!/usr/bin/env bash
# Create .tools/localstack-venv: open-source LocalStack (S3 only) on the host, for the compute-log tests.
# LocalStack needs Python 3.13 and these pins (FACTS.md); the Docker image needs a token since 2026-03.
# Idempotent: a stamp file records the pins, so a second run with the same pins does nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LOCALSTACK_VENV:-$ROOT/.tools/localstack-venv}"
PYTHON313="${LOCALSTACK_PYTHON:-$HOME/.pyenv/versions/3.13.0/bin/python}"
UV="$ROOT/.tools/uv-venv/bin/uv"
PINS=(
  "localstack-core[runtime]==2026.3.0"
  "cbor2==5.6.5"
  "pyopenssl==24.2.1"
  "cryptography==43.0.3"
  "service-identity==24.1.0"
)
STAMP="$VENV/.floe-pins"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "${PINS[*]}" ]]; then
  exit 0
fi
if [[ ! -x "$PYTHON313" ]]; then
  echo "localstack.sh: Python 3.13 not found at $PYTHON313; set LOCALSTACK_PYTHON to a Python 3.13" >&2
  exit 1
fi
echo "Creating $VENV (LocalStack, about 330 MB)..."
if [[ -x "$UV" ]]; then
  "$UV" venv --quiet --python "$PYTHON313" "$VENV"
  "$UV" pip install --quiet --python "$VENV/bin/python" "${PINS[@]}"
else
  "$PYTHON313" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
fi
printf '%s' "${PINS[*]}" > "$STAMP"
