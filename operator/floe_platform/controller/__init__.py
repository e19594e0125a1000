"""The floe operator: FloePlatform resources in, one PodTemplate per resource profile out.

``reconcile`` holds the logic as plain functions over a kubernetes client (tests call it without kopf),
``status`` builds the status block, ``handlers`` is the thin kopf shell and ``main`` starts it. Import
this package only where kopf and the kubernetes client are installed (the ``operator`` extra).
"""
