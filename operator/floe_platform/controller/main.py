"""Start the operator: ``floe operator`` calls ``run_operator``; ``python -m floe_platform.controller.main``
does the same with the operator's defaults (the namespace from ``FLOE_NAMESPACE`` or all namespaces)."""

from __future__ import annotations

import logging
import os

import kopf

from floe_platform.controller.handlers import OperatorOptions, register


def run_operator(options: OperatorOptions, liveness_port: int | None = 8080) -> None:
    """Run until SIGTERM/SIGINT: standalone (no peering), liveness on ``/healthz`` when a port is given."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    registry = kopf.OperatorRegistry()
    register(registry, options)
    liveness = f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=options.all_namespaces,
        namespaces=list(options.namespaces),
        liveness_endpoint=liveness,
    )


def main() -> None:
    namespace = os.environ.get("FLOE_NAMESPACE")
    options = OperatorOptions(namespaces=(namespace,) if namespace else (), all_namespaces=not namespace)
    run_operator(options)


if __name__ == "__main__":
    main()
