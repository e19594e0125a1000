"""The ``floe`` command: turns arguments into calls to the pure core and exit codes.

Exit codes: 0 success, 1 invalid input (one line per problem on stderr, never a traceback).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from floe_platform.api import platform_resource
from floe_platform.config import ConfigError, PlatformConfig, load_platform
from floe_platform.config.models import check_kubernetes_name
from floe_platform.render import PROFILE_LABEL, render_guardrails, render_pod_templates
from floe_platform.rightsize_cli import rightsize_command

# dir_okay: a directory is a bad input like any other (exit 1, one line from the loader), not a usage error.
file_argument = click.argument("file", type=click.Path(path_type=Path))


def _kubernetes_name(context: click.Context, parameter: click.Parameter, value: str | None) -> str | None:
    """--name and --namespace end up in object names and label values: the same rule as platform.name."""
    problem = None if value is None else check_kubernetes_name(value)
    if problem:
        _fail([f"{parameter.opts[0]}: {problem}"])
    return value


def _fail(lines: list[str]) -> NoReturn:
    for line in ConfigError(lines).lines:  # escaped: each problem stays on one line
        click.echo(line, err=True)
    sys.exit(1)


def _load(path: Path) -> PlatformConfig:
    try:
        return load_platform(path)
    except ConfigError as error:
        _fail(error.lines)


def _dump_yaml(documents: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="floe-platform")
def main() -> None:
    """floe-platform: platform.yaml resource profiles as Kubernetes PodTemplates for Dagster runs."""


@main.command()
@file_argument
def validate(file: Path) -> None:
    """Check FILE against the platform.yaml contract."""
    config = _load(file)
    profiles = config.infrastructure.resource_profiles
    logs = config.observability.compute_logs
    logs_text = f"compute logs {logs.manager_type}" if logs.enabled else "compute logs off"
    click.echo(
        f"{file}: valid; {len(profiles)} profile(s) ({', '.join(profiles)}), {logs_text}, "
        f"{len(config.storage)} storage(s)"
    )


@main.command()
@file_argument
@click.option("--profile", "profiles", multiple=True, help="Render only this profile (repeatable).")
@click.option(
    "--name",
    "platform_name",
    callback=_kubernetes_name,
    help="Platform name, the prefix of each template's name.",
)
@click.option("--namespace", "-n", callback=_kubernetes_name, help="Namespace to put in the metadata.")
def render(file: Path, profiles: tuple[str, ...], platform_name: str | None, namespace: str | None) -> None:
    """Write the PodTemplate of each profile in FILE as YAML documents, then, with
    infrastructure.namespace_limits enabled, the LimitRange and ResourceQuota the operator applies."""
    config = _load(file)
    known = config.infrastructure.resource_profiles
    unknown = [name for name in profiles if name not in known]
    if unknown:
        _fail(
            [
                f"--profile: {name!r} is not a profile in {file} (profiles: {', '.join(known)})"
                for name in unknown
            ]
        )
    templates = render_pod_templates(config, platform_name, namespace)
    if profiles:
        templates = [t for t in templates if t["metadata"]["labels"][PROFILE_LABEL] in profiles]
    guardrails = [] if profiles else render_guardrails(config, platform_name, namespace)
    click.echo(_dump_yaml([*templates, *guardrails]), nl=False)


@main.command()
@file_argument
@click.option(
    "--name",
    callback=_kubernetes_name,
    help="Name of the FloePlatform resource, the prefix of its PodTemplates (default: platform.name).",
)
@click.option("--namespace", "-n", callback=_kubernetes_name, help="Namespace of the FloePlatform resource.")
def cr(file: Path, name: str | None, namespace: str | None) -> None:
    """Write the FloePlatform custom resource of FILE, for kubectl apply."""
    config = _load(file)
    click.echo(_dump_yaml([platform_resource(config, name or config.platform.name, namespace)]), nl=False)


@main.command()
@click.option("--namespace", "-n", "namespaces", multiple=True, help="Watch this namespace (repeatable).")
@click.option("--all-namespaces", "-A", is_flag=True, help="Watch every namespace (needs cluster-wide RBAC).")
@click.option(
    "--liveness-port", type=int, default=8080, show_default=True, help="Port of GET /healthz; 0: off."
)
@click.option(
    "--resync-seconds",
    type=click.FloatRange(min=1),
    default=20.0,
    show_default=True,
    help="How often every FloePlatform is re-checked; PodTemplates edited or deleted by hand are repaired.",
)
def operator(
    namespaces: tuple[str, ...], all_namespaces: bool, liveness_port: int, resync_seconds: float
) -> None:
    """Run the operator: each FloePlatform's resource profiles become PodTemplates (kopf, standalone)."""
    if bool(namespaces) == all_namespaces:
        _fail(["floe operator: give --namespace NS (repeatable) or --all-namespaces, not both or neither"])
    # kopf loads only here, so that `floe validate` stays fast and dependency-free; `main` first, as it
    # keeps the clients the operator does not use out of the process before kopf is imported.
    from floe_platform.controller.main import CredentialsError, OperatorOptions, run_operator

    options = OperatorOptions(
        namespaces=namespaces, all_namespaces=all_namespaces, resync_seconds=resync_seconds
    )
    try:
        run_operator(options, liveness_port=liveness_port or None)
    except CredentialsError as error:
        _fail([str(error)])


@main.command("delete-platforms")
@click.option(
    "--namespace", "-n", required=True, callback=_kubernetes_name, help="Namespace of the FloePlatforms."
)
@click.option("--selector", "-l", required=True, help="Label selector of the FloePlatforms to delete.")
@click.option(
    "--timeout-seconds",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="How long to wait for the operator to finish each deletion.",
)
def delete_platforms_command(namespace: str, selector: str, timeout_seconds: float) -> None:
    """Delete the matching FloePlatforms and wait until they are gone (the chart's pre-delete hook)."""
    from floe_platform.controller.kubeapi import CredentialsError
    from floe_platform.controller.uninstall import UninstallError, delete_platforms, platforms_api

    try:
        api = platforms_api()
    except CredentialsError as error:
        _fail([str(error)])
    try:
        delete_platforms(api, namespace, selector, timeout_seconds, report=click.echo)
    except UninstallError as error:
        _fail([f"floe delete-platforms: {error}"])


main.add_command(rightsize_command, "rightsize")

if __name__ == "__main__":
    main()
