"""The chart's two programs that talk to PostgreSQL before Dagster does, against a real PostgreSQL.

Real: PostgreSQL (the host's server binaries, testkit/postgres.py), the real helm v4 (`helm template`) for
the commands and env, and the project venv's Dagster for `dagster instance migrate`. The programs run on
the host as the pods would run them, with the database's address swapped for the local server's.
- The init container `wait-for-postgres` of the webserver, daemon and code server: it waits while the
  database is down, and ends once a login as Dagster succeeds.
- The pre-upgrade hook Job: its command writes the release's new dagster.yaml and runs
  `dagster instance migrate`, which creates or upgrades Dagster's schema.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import CI_DIR, render

from testkit.postgres import PASSWORD, Postgres

pytestmark = pytest.mark.slow

USER = DATABASE = "dagster"  # the chart's defaults for Dagster's own database


def _env_values(container: dict[str, Any]) -> dict[str, str]:
    return {entry["name"]: entry["value"] for entry in container.get("env", []) if "value" in entry}


def test_webserver_waits_for_postgres_then_starts(tmp_path: Path) -> None:
    rendered = render()
    pod = rendered.named("Deployment", "webserver")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"][:2] == ["python", "-c"]
    env = _env_values(init)
    assert (env["PGUSER"], env["PGDATABASE"], env["PGPORT"]) == (USER, DATABASE, "5432")
    postgres = Postgres(superuser=USER, database=DATABASE)
    env |= {"PGHOST": "127.0.0.1", "PGPORT": str(postgres.port), "DAGSTER_PG_PASSWORD": PASSWORD}
    env |= {"RETRY_SECONDS": "0.5", "PATH": os.environ["PATH"]}
    waiting = subprocess.Popen(
        [sys.executable, "-c", init["command"][2]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)
        assert waiting.poll() is None, "the init container ended while the database was down"
        postgres.start()
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
        postgres.remove()
    assert waiting.returncode == 0, err
    assert f"waiting for PostgreSQL at {USER}@127.0.0.1:{postgres.port}/{DATABASE}" in err
    assert "accepts logins" in out


def test_pre_upgrade_hook_migrates_the_instance_with_the_new_dagster_yaml(tmp_path: Path) -> None:
    rendered = render([CI_DIR / "compute-logs-off-values.yaml"])
    job = rendered.named("Job", "migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = _env_values(container)
    instance = yaml.safe_load(env["DAGSTER_INSTANCE_YAML"])
    expected = {key: value for key, value in rendered.dagster_yaml().items() if key != "run_launcher"}
    assert instance == expected, "the hook must migrate with this release's dagster.yaml, minus the launcher"
    postgres = Postgres(superuser=USER, database=DATABASE).start()
    try:
        local = (
            env["DAGSTER_INSTANCE_YAML"]
            .replace(instance["run_storage"]["config"]["postgres_db"]["hostname"], "127.0.0.1")
            .replace("port: 5432", f"port: {postgres.port}")
        )
        home = tmp_path / "dagster-home"
        home.mkdir()
        run_env = {
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "DAGSTER_HOME": str(home),
            "DAGSTER_INSTANCE_YAML": local,
            "DAGSTER_PG_PASSWORD": PASSWORD,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        result = subprocess.run(
            container["command"], env=run_env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert (home / "dagster.yaml").read_text().strip() == local.strip()
        assert {"runs", "event_logs", "alembic_version"} <= postgres.tables(DATABASE)
    finally:
        postgres.remove()
