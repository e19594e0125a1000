#!/usr/bin/env bash
# Create .tools/localstack-venv: open-source LocalStack (S3 only) on the host, for the S3 tests.
# LocalStack needs Python 3.13 and the pins in localstack-requirements.in (FACTS.md); the Docker image needs
# a token since 2026-03. localstack-requirements.lock holds every package at an exact version; regenerate it
# with: uv pip compile --python-version 3.13 --python-platform x86_64-manylinux_2_28 --no-header \
#         scripts/localstack-requirements.in -o scripts/localstack-requirements.lock
# Idempotent: a stamp file holds the lock's checksum, so a second run with the same lock does nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LOCALSTACK_VENV:-$ROOT/.tools/localstack-venv}"
PYTHON313="${LOCALSTACK_PYTHON:-$HOME/.pyenv/versions/3.13.0/bin/python}"
UV="$ROOT/.tools/uv-venv/bin/uv"
LOCK="$ROOT/scripts/localstack-requirements.lock"
STAMP="$VENV/.floe-lock-sha256"
checksum="$(sha256sum "$LOCK" | cut -d' ' -f1)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$checksum" ]]; then
  exit 0
fi
if [[ ! -x "$PYTHON313" ]]; then
  echo "localstack.sh: Python 3.13 not found at $PYTHON313; set LOCALSTACK_PYTHON to a Python 3.13" >&2
  exit 1
fi
if [[ ! -x "$UV" ]]; then
  echo "localstack.sh: uv not found at $UV; run make install first" >&2
  exit 1
fi
echo "Creating $VENV (LocalStack, about 330 MB)..."
"$UV" venv --quiet --allow-existing --python "$PYTHON313" "$VENV"
"$UV" pip sync --quiet --python "$VENV/bin/python" "$LOCK"
printf '%s' "$checksum" > "$STAMP"
