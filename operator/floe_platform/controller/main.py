"""Start the operator: ``floe operator`` calls ``run_operator``; ``python -m floe_platform.controller.main``
does the same with the operator's defaults (the namespace from ``FLOE_NAMESPACE`` or all namespaces)."""

from __future__ import annotations

import logging
import os
import sys

from floe_platform.controller.kubeapi import CredentialsError, keep_out_unused_clients, login

keep_out_unused_clients()  # before kopf: the operator talks to the API through its own small client

import kopf  # noqa: E402

from floe_platform.controller.handlers import OperatorOptions, register  # noqa: E402

__all__ = ["CredentialsError", "OperatorOptions", "run_operator"]


def run_operator(options: OperatorOptions, liveness_port: int | None = 8080) -> None:
    """Run until SIGTERM/SIGINT: standalone (no peering), liveness on ``/healthz`` when a port is given.

    Raises ``CredentialsError`` at once, with its one-line message, when there is nothing to log in with.
    """
    credentials = login()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    registry = kopf.OperatorRegistry()
    register(registry, options, credentials)
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
    try:
        run_operator(options)
    except CredentialsError as error:
        print(error, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
