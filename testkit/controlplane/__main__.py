"""``python -m testkit.controlplane build|up|down|status [--state-dir DIR]`` (default DIR: .cluster).

``build`` builds the binaries unless cached and prints their directory; ``up`` builds too if needed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from testkit.controlplane import build, cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testkit.controlplane", description=__doc__)
    parser.add_argument("command", choices=("build", "up", "down", "status"))
    parser.add_argument("--state-dir", type=Path, default=Path(".cluster"))
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()
    try:
        return _run(args.command, state_dir)
    except build.GoMissingError as error:
        print(error, file=sys.stderr)
        return 2
    except (
        RuntimeError,
        TimeoutError,
    ) as error:  # a component failed to start: its log tail is in the message
        print(f"{args.command} failed: {error}", file=sys.stderr)
        return 1


def _run(command: str, state_dir: Path) -> int:
    if command == "build":
        print(build.ensure_built())
    elif command == "up":
        start = time.monotonic()
        plane = cluster.up(state_dir)
        print(f"control plane ready in {time.monotonic() - start:.1f} s at {plane.server}")
        print(f"export KUBECONFIG={plane.kubeconfig}; kubectl get nodes")
    elif command == "down":
        print("stopped" if cluster.down(state_dir) else f"nothing running in {state_dir}")
    else:
        states = cluster.status(state_dir)
        for name, state in states.items():
            print(f"{name:24} {state}")
        return 0 if all(s.startswith("running") for s in states.values()) else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
