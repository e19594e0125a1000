"""kube-apiserver's own count of the requests it served, by verb, resource and subresource.

Read from ``/metrics`` (``apiserver_request_total``) as the admin, before and after a piece of work; the
difference is what every client sent meanwhile, counted by the server itself. Clients are not told apart,
so a caller subtracts what it sent itself (and what kube-controller-manager's informers do, which is
watches, not writes).
"""

from __future__ import annotations

import re
from collections import Counter

from testkit.controlplane.kubeapi import KubeApi

RequestKey = tuple[str, str, str]
"""(verb, resource, subresource), e.g. ``("PATCH", "floeplatforms", "status")``."""

_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def request_totals(api: KubeApi) -> Counter[RequestKey]:
    """Every request the server has served so far, summed over codes, scopes and API groups."""
    text = str(api.request("GET", "/metrics", timeout=30).get("text", ""))
    return parse_request_totals(text)


def parse_request_totals(text: str) -> Counter[RequestKey]:
    totals: Counter[RequestKey] = Counter()
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        totals[key] += round(float(match["value"]))
    return totals


def requests_between(before: Counter[RequestKey], after: Counter[RequestKey]) -> Counter[RequestKey]:
    """The requests served between two readings (zero and negative differences dropped)."""
    return Counter({key: after[key] - before[key] for key in after if after[key] > before[key]})
