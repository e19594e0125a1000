#!/usr/bin/env bash
# Create .tools/localstack-venv: open-source LocalStack (S3 only) on the host, for the S3 tests.
# LocalStack needs Python 3.13 and the pins in localstack-requirements.in (FACTS.md); the Docker image needs
# a token since 2026-03. localstack-requirements.lock holds every package at an exact version; regenerate it
# with: uv pip compile --python-version 3.13 --python-platform x86_64-manylinux_2_28 --no-header \
#         scripts/localstack-requirements.in -o scripts/localstack-requirements.lock
# Idempotent: a stamp file holds the lock's checksum, so a second run with the same lock does nothing.
# Python 3.13 is looked for in this order: LOCALSTACK_PYTHON, pyenv (PYENV_ROOT, `pyenv root` or
# ~/.pyenv), uv (`uv python find 3.13` with the project's pinned uv), python3.13 on PATH. Each candidate
# must run and report 3.13 (a pyenv shim without a selected version does not).
# `scripts/localstack.sh --find-python` prints the interpreter it would use and exits.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LOCALSTACK_VENV:-$ROOT/.tools/localstack-venv}"
UV="$ROOT/.tools/uv-venv/bin/uv"
LOCK="$ROOT/scripts/localstack-requirements.lock"
STAMP="$VENV/.floe-lock-sha256"

is_python313() {
  [[ -n "$1" && -x "$1" ]] \
    && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1
}

find_python313() {
  local candidate pyenv_root
  if [[ -n "${LOCALSTACK_PYTHON:-}" ]]; then
    if is_python313 "$LOCALSTACK_PYTHON"; then echo "$LOCALSTACK_PYTHON"; return 0; fi
    echo "localstack.sh: LOCALSTACK_PYTHON=$LOCALSTACK_PYTHON is not a working Python 3.13" >&2
    return 1
  fi
  pyenv_root="${PYENV_ROOT:-}"
  if [[ -z "$pyenv_root" ]] && command -v pyenv >/dev/null 2>&1; then
    pyenv_root="$(pyenv root 2>/dev/null || true)"
  fi
  pyenv_root="${pyenv_root:-$HOME/.pyenv}"
  # Newest 3.13.x first.
  while IFS= read -r candidate; do
    if is_python313 "$candidate"; then echo "$candidate"; return 0; fi
  done < <(ls -d "$pyenv_root"/versions/3.13*/bin/python 2>/dev/null | sort -rV)
  if [[ -x "$UV" ]]; then
    candidate="$("$UV" python find --no-project 3.13 2>/dev/null || true)"
    if is_python313 "$candidate"; then echo "$candidate"; return 0; fi
  fi
  # Every python3.13 on PATH, not only the first: a pyenv shim may come before the system's.
  while IFS= read -r candidate; do
    if is_python313 "$candidate"; then echo "$candidate"; return 0; fi
  done < <(type -ap python3.13 || true)
  echo "localstack.sh: no Python 3.13 found (looked in pyenv at $pyenv_root, uv, python3.13 on PATH);" \
    "install one with \`pyenv install 3.13\`, \`$UV python install 3.13\` or your system's python3.13" \
    "package, or set LOCALSTACK_PYTHON to one" >&2
  return 1
}

if [[ "${1:-}" == "--find-python" ]]; then
  find_python313
  exit
fi

checksum="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$checksum" ]]; then
  exit 0
fi
PYTHON313="$(find_python313)"
if [[ ! -x "$UV" ]]; then
  echo "localstack.sh: uv not found at $UV; run make install first" >&2
  exit 1
fi
echo "Creating $VENV (LocalStack, about 330 MB)..."
"$UV" venv --quiet --allow-existing --python "$PYTHON313" "$VENV"
"$UV" pip sync --quiet --python "$VENV/bin/python" "$LOCK"
printf '%s' "$checksum" > "$STAMP"
