"""Addresses for servers the tests start: a free loopback port, and the host's own address."""

from __future__ import annotations

import socket
import urllib.request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def host_ip() -> str:
    """The address of the host's default route: what a pod on the host reaches the host at, and what a
    kubelet takes as its node IP (it rejects a loopback one). Nothing is sent (a UDP socket only routes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: any routable address will do
        address: str = probe.getsockname()[0]
    return address


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` answers 200 (a health endpoint); any connection error is a no."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False
