"""Running mailer as an ordinary (non-root) user, from a wheel in a fresh virtualenv.

When the suite runs as root (CI), commands run as ``mailer-ci`` through ``runuser``; the user is
created here if missing. When it runs as an ordinary user (a laptop), they run as that user.
Either way nothing of the suite's own ``.venv`` is used: ``mailer`` comes from the wheel just
built, installed with its dependencies from a local wheelhouse, so no index is needed there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CI_USER = "mailer-ci"


def unavailable(reason: str) -> None:
    """Skip on a developer machine, but never in CI: there a missing case is a failure."""
    if os.environ.get("MAILER_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"{reason} (MAILER_REQUIRE_INTEGRATION=1: this test may not be skipped)")
    pytest.skip(reason)


class OrdinaryUser:
    """Who runs the commands, and how: ``runuser -u mailer-ci --`` under root, else directly."""

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        if self.as_root:
            _ensure_user(CI_USER)
            import pwd

            entry = pwd.getpwnam(CI_USER)
            self.name, self.uid, self.gid = CI_USER, entry.pw_uid, entry.pw_gid
        else:
            import pwd

            self.uid, self.gid = os.getuid(), os.getgid()
            self.name = pwd.getpwuid(self.uid).pw_name

    def argv(self, args: list[str]) -> list[str]:
        # -m: keep the environment given (its HOME above all). Without it runuser sets HOME to
        # the account's /nonexistent, and per-user directories (platformdirs) would go there.
        return ["runuser", "-m", "-u", self.name, "--", *args] if self.as_root else list(args)

    def run(
        self,
        args: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        timeout: float = 120,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            self.argv(args),
            cwd=cwd,
            env=env,
            text=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"{args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def scratch(self) -> Path:
        """A new directory the user owns, under /tmp so that its parents are searchable."""
        d = Path(tempfile.mkdtemp(prefix="mlr-user-", dir="/tmp"))
        d.chmod(0o755)
        if self.as_root:
            os.chown(d, self.uid, self.gid)
        return d

    def give(self, path: Path) -> None:
        if self.as_root:
            for p in [path, *path.rglob("*")]:
                os.chown(p, self.uid, self.gid, follow_symlinks=False)

    def env(self, home: Path) -> dict[str, str]:
        """A clean environment: an empty HOME, a plain PATH, nothing of ours (no MAILER_*)."""
        return {
            "HOME": str(home),
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
            "USER": self.name,
            "LOGNAME": self.name,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }


def _ensure_user(name: str) -> None:
    """Create the CI user once (idempotent): a system account with no home and no shell."""
    import pwd

    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    r = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        capture_output=True,
        text=True,
    )
    # Two sessions racing to create it: the loser's "already exists" (exit 9) is fine.
    if r.returncode not in (0, 9):
        raise AssertionError(f"useradd {name} failed: {r.stderr.strip()}")


def python_for(user: OrdinaryUser) -> str:
    """An interpreter of this Python's version that the user may execute. The suite's own
    may live under a private home (pyenv in /root), so the system one is the fallback."""
    want = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    tried = []
    for candidate in (str(base), f"/usr/bin/python{want}", "/usr/bin/python3"):
        if not Path(candidate).exists() or candidate in tried:
            continue
        tried.append(candidate)
        r = user.run(
            [
                candidate,
                "-c",
                "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])",
            ],
            cwd=Path("/"),
            env=user.env(Path("/nonexistent")),
        )
        if r.returncode == 0 and r.stdout.strip() == want:
            return candidate
    unavailable(
        f"no Python {want} with venv and ensurepip that user {user.name} may run "
        f"(tried {', '.join(tried)}; on Debian: apt-get install python3-venv)"
    )
    raise AssertionError("unreachable")


def build_wheel(dest: Path) -> Path:
    """mailer's wheel from the working tree, alone (``--no-deps``), offline: the build
    backend is the venv's own setuptools (the dev extra)."""
    dest.mkdir(parents=True, exist_ok=True)
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
            str(dest),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    (wheel,) = dest.glob("*.whl")
    return wheel


def dependency_wheelhouse() -> Path:
    """Wheels of mailer's dependencies, at the versions installed in the suite's venv, built
    once per machine (per set of versions) and kept in .venv/wheelhouse-HASH. Building it
    the first time asks the package index (or pip's cache); afterwards it is offline."""
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    key = hashlib.sha256((freeze + (ROOT / "pyproject.toml").read_text()).encode()).hexdigest()
    house = Path(sys.prefix) / f"wheelhouse-{key[:16]}"
    if (house / "complete").exists():
        return house
    building = Path(tempfile.mkdtemp(prefix="wheelhouse-", dir=sys.prefix))
    constraints = building / "constraints.txt"
    constraints.write_text(freeze, encoding="utf-8")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "-w",
            str(building),
            "-c",
            str(constraints),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if r.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        raise AssertionError(f"building the dependency wheelhouse failed:\n{r.stderr[-2000:]}")
    # mailer's own wheel is built fresh for every run; a stale copy here could be picked.
    for own in building.glob("mailer-*.whl"):
        own.unlink()
    for own in building.glob("interview_mailer-*.whl"):
        own.unlink()
    (building / "complete").write_text("", encoding="utf-8")
    try:
        building.rename(house)
    except OSError:  # another session finished first: use its copy
        shutil.rmtree(building, ignore_errors=True)
    for old in Path(sys.prefix).glob("wheelhouse-*"):  # other versions' houses
        if old != house and (old / "complete").exists():
            shutil.rmtree(old, ignore_errors=True)
    return house


def install_into_fresh_venv(
    user: OrdinaryUser, where: Path, wheel: Path, env: dict[str, str]
) -> Path:
    """A fresh venv at WHERE/venv, made and filled by the user from a copy of the wheels
    (theirs to read), offline. Returns the venv's bin/."""
    wheels = where / "wheels"
    shutil.copytree(dependency_wheelhouse(), wheels, dirs_exist_ok=True)
    shutil.copy(wheel, wheels)
    user.give(wheels)
    venv = where / "venv"
    user.run([python_for(user), "-m", "venv", str(venv)], cwd=where, env=env, check=True)
    user.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(wheels),
            str(wheels / wheel.name),
        ],
        cwd=where,
        env=env,
        check=True,
        timeout=300,
    )
    return venv / "bin"
