"""Files generated from the platform.yaml models: the one place a contract change has to be made.

``python -m floe_platform.codegen`` (``make schemas``) writes every generated file; a test regenerates
each one and fails on any difference. Development only: the runtime wheel does not carry this package.
"""
