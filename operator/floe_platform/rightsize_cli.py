"""``floe rightsize``: turns arguments into calls to ``rightsize`` (pure) and ``dagster.run_history``.

Exit codes: 0 success, 1 bad input (one line on stderr: no DAGSTER_HOME, an unreadable instance, a window
without runs, a bad option). Dagster is imported only when the command runs, so `floe validate` stays
light.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from floe_platform import rightsize
from floe_platform.config import ConfigError, load_platform


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


def parse_headroom(text: str) -> float:
    """``20%`` or ``0.2`` -> 0.2."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise rightsize.RightsizeError(
            f"--headroom: {text!r} is not a fraction; give e.g. 20% or 0.2"
        ) from None
    if value < 0:
        raise rightsize.RightsizeError(f"--headroom: {text!r} is negative; give e.g. 20% or 0.2")
    return value


def _profiles(platform: Path | None, runs: list[rightsize.RunRecord]) -> list[rightsize.Profile]:
    if platform is None:
        return rightsize.profiles_from_runs(runs)
    try:
        return rightsize.profiles_from_platform(load_platform(platform))
    except ConfigError as error:
        _fail("; ".join(error.lines))


@click.command()
@click.option(
    "--dagster-home", type=click.Path(path_type=Path), help="Instance directory (default: $DAGSTER_HOME)."
)
@click.option(
    "--since", default="7d", show_default=True, help="Window: runs created in the last 30m, 12h, 7d, 2w ..."
)
@click.option(
    "--platform",
    type=click.Path(dir_okay=False, path_type=Path),
    help="platform.yaml whose profiles may be suggested (default: the --write file, else the profiles and "
    "limits the runs recorded).",
)
@click.option(
    "--headroom", default="20%", show_default=True, help="Margin over the p95 peak, e.g. 20% or 0.2."
)
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Also write a PNG chart here.")
@click.option(
    "--write",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Print the change to this platform.yaml as a diff, and the tags that move each job (writes nothing "
    "without --yes).",
)
@click.option("--yes", is_flag=True, help="With --write: apply the diff shown to the file.")
def rightsize_command(  # noqa: PLR0917 - click passes every option as an argument
    dagster_home: Path | None,
    since: str,
    platform: Path | None,
    headroom: str,
    output: str,
    plot: Path | None,
    write: Path | None,
    yes: bool,
) -> None:
    """Say which resource profile each job should have, from what its runs really used."""
    try:
        window = rightsize.parse_window(since)
        margin = parse_headroom(headroom)
        from floe_platform.dagster.run_history import open_instance, read_runs

        with open_instance(str(dagster_home) if dagster_home else None) as instance:
            runs = read_runs(instance, window)
        if not runs:
            _fail(
                f"no runs launched on a resource profile in the last {since}; "
                "widen --since, or run a job first"
            )
        profiles = _profiles(platform or write, runs)
        reports = rightsize.summarize(runs, profiles, margin)
        if output == "json":
            click.echo(rightsize.to_json(reports, margin), nl=False)
        else:
            click.echo(rightsize.format_table(reports, margin), nl=False)
        if plot is not None:
            from floe_platform.rightsize_plot import write_plot

            write_plot(reports, plot)
            click.echo(f"wrote {plot}", err=True)
        if write is not None:
            _show_write(write, reports, profiles, yes)
    except rightsize.RightsizeError as error:
        _fail(str(error))


def _show_write(
    path: Path, reports: list[rightsize.JobReport], profiles: list[rightsize.Profile], yes: bool
) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        _fail(f"--write: cannot read {path}: {error.strerror or error}")
    changed = rightsize.with_added_profiles(text, str(path), reports, profiles)
    diff = rightsize.unified_diff(text, changed, str(path))
    snippet = rightsize.tag_snippet(reports)
    click.echo("")
    click.echo(f"# Changes to {path}:" if diff else f"# {path}: no profile to add.")
    if diff:
        click.echo(diff, nl=False)
    click.echo("# Run tags that move each job to its suggested profile (set on the job, or per run):")
    click.echo(snippet or "# none: every job is on its suggested profile\n", nl=False)
    if diff and yes:
        path.write_text(changed, encoding="utf-8")
        click.echo(f"wrote {path}", err=True)
    elif diff:
        click.echo(f"# Nothing written; rerun with --yes to apply the diff to {path}.", err=True)
