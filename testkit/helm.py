"""What a test or benchmark passes to `helm template`, `helm lint` or `helm install --dry-run=client`: renders
without a cluster.

The chart refuses by default to generate a PostgreSQL password when it renders without a cluster to read
it back from (its GitOps guard, `postgresql.auth.failWithoutCluster`). A render whose objects are only
looked at, or applied once to a throwaway namespace, opts out; tests of the guard itself do not.
"""

from __future__ import annotations

WITHOUT_CLUSTER = ("--set", "postgresql.auth.failWithoutCluster=false")
