"""The floe operator: FloePlatform resources in, one PodTemplate per resource profile out.

``client.reconcile`` holds the logic as plain functions over the operator's own API client
(``kubeapi``; tests call it without kopf), ``status`` builds the status block, ``handlers`` is the thin
kopf shell and ``main`` starts it. Import ``handlers`` and ``main`` only where kopf is installed (the
``operator`` extra).
"""
