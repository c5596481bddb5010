"""Newcomer: wall time from the end of the install to the first apology in the sandbox INBOX.

    .venv/bin/python bench/newcomer_bench.py [--reps 5]

Builds the wheel and installs it as the test does (tests/test_newcomer.py: an ordinary user,
mailer-ci under root, a fresh venv, offline from the wheelhouse), outside the timing. Then,
for each rep, in a new empty HOME, it runs the README's try-out lines as printed and times:
from before the first line until the apology can be read over IMAP in the interviewer's
INBOX, plus each line alone. Target: <= 30 s on a CI machine. See bench/README.md.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.newcomer import pinned_now, readme_lines, wait_for_apology  # noqa: E402
from tests.users import OrdinaryUser, build_wheel, install_into_fresh_venv  # noqa: E402

TARGET_S = 30.0


def one_rep(user: OrdinaryUser, bin_dir: Path, try_out: list[str]) -> tuple[float, list[float]]:
    home = user.scratch()
    env = {
        **user.env(home),
        "PATH": f"{bin_dir}:{user.env(home)['PATH']}",
        "MAILER_NOW": pinned_now(try_out),
    }
    steps: list[float] = []
    try:
        start = time.perf_counter()
        arrived_at = None
        for line in try_out:
            t = time.perf_counter()
            r = user.run(["bash", "-c", line], cwd=home, env=env)
            steps.append(time.perf_counter() - t)
            if r.returncode != 0:
                raise SystemExit(f"README line failed: {line}\n{r.stderr}")
            if arrived_at is None and "send" in shlex.split(line):
                if not wait_for_apology(home, "interviewer@sandbox.test"):
                    raise SystemExit("no apology arrived in the sandbox INBOX")
                arrived_at = time.perf_counter()
        if arrived_at is None:
            raise SystemExit("the README's try-out has no send line")
        return arrived_at - start, steps
    finally:
        user.run(["bash", "-c", "mailer sandbox stop"], cwd=home, env=env)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    readme = readme_lines()
    user = OrdinaryUser()
    where = user.scratch()
    try:
        t = time.perf_counter()
        wheel = build_wheel(where / "dist")
        built = time.perf_counter() - t
        t = time.perf_counter()
        bin_dir = install_into_fresh_venv(user, where, wheel, user.env(where))
        installed = time.perf_counter() - t
        print(f"(not timed: wheel built in {built:.1f} s, installed in {installed:.1f} s)")
        print(f"user {user.name}; README try-out: {len(readme.try_out)} lines")
        totals, per_line = [], []
        for i in range(args.reps):
            total, steps = one_rep(user, bin_dir, readme.try_out)
            totals.append(total)
            per_line.append(steps)
            shown = ", ".join(f"{s:.2f}" for s in steps)
            print(f"rep {i + 1}: {total:.2f} s to the first apology in INBOX (lines: {shown} s)")
        median = statistics.median(totals)
        verdict = "met" if max(totals) <= TARGET_S else "NOT met"
        print(
            f"end of install -> first apology in INBOX: median {median:.2f} s, "
            f"max {max(totals):.2f} s over {args.reps} reps (target <= {TARGET_S:.0f} s: {verdict})"
        )
        for n, line in enumerate(readme.try_out):
            col = [steps[n] for steps in per_line]
            print(f"  median {statistics.median(col):.2f} s  {line[:70]}")
    finally:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
