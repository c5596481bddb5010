"""What the package ships: its name, its licence, the docs and units the README points to,
and test-only code that does nothing unless a test asks."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailer.adapters import crashpoint, process
from mailer.cli.main import cli

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel, built offline from a copy of the sources (the checkout stays clean)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for name in ("mailer", "templates", "docs", "contrib"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("*.whl")
    return zipfile.ZipFile(built)


def test_wheel_is_named_interview_mailer_with_its_licence(wheel: zipfile.ZipFile) -> None:
    """Verify the distribution name (mailer is taken on the index), the MIT licence file, and
    the import package and command still called mailer."""
    assert Path(wheel.filename or "").name.startswith("interview_mailer-")
    meta_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    meta = email.message_from_bytes(wheel.read(meta_name))
    assert meta["Name"] == "interview-mailer"
    assert meta["License-Expression"] == "MIT"
    licence = next(n for n in wheel.namelist() if n.endswith("/licenses/LICENSE"))
    assert wheel.read(licence).decode().startswith("MIT License")
    entry_points = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    assert "mailer = mailer.cli.main:main" in wheel.read(entry_points).decode()


def test_wheel_carries_docs_units_and_templates(wheel: zipfile.ZipFile) -> None:
    """Verify every docs/*.md, contrib/* unit and template the README relies on is inside."""
    names = set(wheel.namelist())
    shipped = {
        "docs": sorted((ROOT / "docs").glob("*.md")),
        "contrib": sorted((ROOT / "contrib").iterdir()),
        "templates": sorted((ROOT / "templates").glob("*.j2")),
    }
    for folder, files in shipped.items():
        assert files, folder
        for f in files:
            assert f"mailer/{folder}/{f.name}" in names, f"{folder}/{f.name} not in the wheel"


def test_version_is_looked_up_under_the_distribution_name() -> None:
    """Verify `mailer --version` finds the installed distribution interview-mailer."""
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    assert "version 0." in result.output


# --- crash points: test-only, inert unless MAILER_CRASH_AT is set ---


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    killed: list[str] = []
    monkeypatch.setattr(process, "kill_self", lambda: killed.append("killed"))
    monkeypatch.setattr(os, "kill", lambda *a: pytest.fail(f"os.kill{a}"))
    monkeypatch.setattr(crashpoint, "_hits", crashpoint.Counter())
    return killed


def test_crash_points_do_nothing_without_their_variable(
    monkeypatch: pytest.MonkeyPatch, kills: list[str]
) -> None:
    """Verify without MAILER_CRASH_AT every point returns, kills nothing and counts nothing."""
    monkeypatch.delenv(crashpoint.ENV, raising=False)
    for point in crashpoint.POINTS:
        assert crashpoint.crash_point(point) is None
    assert kills == [] and not crashpoint._hits


def test_a_crash_point_fires_only_at_its_name_and_count(
    monkeypatch: pytest.MonkeyPatch, kills: list[str]
) -> None:
    """Verify MAILER_CRASH_AT=after-250@2 ignores other points and fires on the second hit."""
    monkeypatch.setenv(crashpoint.ENV, "after-250@2")
    crashpoint.crash_point("after-sent")
    crashpoint.crash_point("after-250")
    assert kills == []
    crashpoint.crash_point("after-250")
    assert kills == ["killed"]


@pytest.mark.wire  # runs the installed entry point
def test_an_installed_copy_shows_where_its_docs_and_units_are(
    wheel: zipfile.ZipFile, tmp_path: Path
) -> None:
    """Verify `mailer paths`, run from the unpacked wheel, names folders inside the installed
    package that hold the README's docs and units."""
    site = tmp_path / "site"
    wheel.extractall(site)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from mailer.cli.main import main; sys.argv[1:] = ['paths']; main()",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    found = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert Path(found["docs"]) == site / "mailer" / "docs"
    assert (Path(found["docs"]) / "oauth2.md").is_file()
    assert (Path(found["contrib"]) / "mailer.service").is_file()
    assert (Path(found["templates"]) / "illness.txt.j2").is_file()
