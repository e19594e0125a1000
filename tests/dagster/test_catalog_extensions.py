"""DuckDB's extensions come from the lock's packages and never from the network.

Real: DuckDB 1.5.5 and the ``duckdb-extension-ducklake/-postgres/-httpfs`` wheels of uv.lock; a local
DuckLake catalog (file + folder). The "no network" proof is DuckDB's own behaviour under
``offline_config``: with an empty extension directory an ATTACH that needs ducklake fails instead of
downloading it, and an explicit INSTALL looks only in a local folder.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from floe_platform.dagster.catalog import (
    EXTENSIONS,
    CatalogSettings,
    S3Settings,
    attach_catalog,
    bundled_extension_file,
    install_bundled_extensions,
    offline_config,
)


@pytest.fixture(scope="module")
def extension_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_bundled_extensions(tmp_path_factory.mktemp("extensions"))


def test_each_needed_extension_ships_in_a_package_for_this_duckdb() -> None:
    for name in EXTENSIONS:
        assert bundled_extension_file(name).stat().st_size > 1_000_000, name


@pytest.mark.slow  # installs about 100 MB of extensions, then loads them
def test_a_catalog_attaches_with_extensions_loaded_from_the_local_directory(
    extension_dir: Path, tmp_path: Path
) -> None:
    catalog = CatalogSettings(
        "lake",
        str(tmp_path / "catalog.ducklake"),
        f"{tmp_path / 'data'}/",
        S3Settings(None, "us-east-1", False, None, None),
    )
    with duckdb.connect(":memory:", config=offline_config(extension_dir)) as conn:
        attach_catalog(conn, catalog)
        conn.execute("CREATE TABLE t AS SELECT 42 AS answer")
        loaded = dict(
            conn.execute(
                "SELECT extension_name, install_path FROM duckdb_extensions() WHERE loaded"
            ).fetchall()
        )
        assert conn.execute("SELECT answer FROM lake.main.t").fetchall() == [(42,)]
    assert loaded["ducklake"].startswith(str(extension_dir))


@pytest.mark.slow
def test_installing_twice_is_a_no_op(extension_dir: Path) -> None:
    before = {path: path.stat().st_mtime_ns for path in extension_dir.rglob("*.duckdb_extension")}
    install_bundled_extensions(extension_dir)
    assert {path: path.stat().st_mtime_ns for path in extension_dir.rglob("*.duckdb_extension")} == before
    assert len(before) == len(EXTENSIONS)


def test_a_missing_extension_is_never_downloaded(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    with duckdb.connect(":memory:", config=offline_config(empty)) as conn:
        with pytest.raises(duckdb.Error, match="not found"):
            conn.execute(f"ATTACH 'ducklake:{tmp_path / 'c.ducklake'}' AS lake")
        with pytest.raises(duckdb.Error, match="Failed to install local extension") as install:
            conn.execute("INSTALL ducklake")
    assert str(empty / "no-download") in str(install.value)
