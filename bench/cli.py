"""How long the ``digestmail`` command takes to start: ``--help`` and ``issue check FILE``.

Run: ``.venv/bin/python bench/cli.py [--runs 15]``. Each figure is a whole process, as
staff run it (interpreter start, imports, settings, the work), timed from spawn to exit;
the median of ``--runs`` runs is shown with the fastest and slowest, and the median CPU
time of the process (user + system), which other work on a shared machine disturbs
less than the wall clock. The issue checked is the example issue, with its picture in a
media folder of its own. Target: under 0.3 s each. ``python -X importtime -m
digestmail.cli …`` shows what an import costs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIGESTMAIL = str(Path(sys.executable).parent / "digestmail")
EXAMPLE = ROOT / "examples" / "vol-4.1.md"


def timed(args: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each run."""
    walls, cpus = [], []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - start)
        cpus.append(usage.ru_utime + usage.ru_stime)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed: {err}")
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="digestmail-bench-cli-") as tmp:
        media = Path(tmp) / "media"
        media.mkdir()
        shutil.copy(EXAMPLE.with_name("vol-4.1-hero.jpg"), media)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DIGESTMAIL_")},
            "DIGESTMAIL_MEDIA_DIR": str(media),
            "DIGESTMAIL_DATABASE_URL": f"sqlite:///{tmp}/unused.db",
        }
        print(f"load average at start: {load} ({os.cpu_count()} cores), {args.runs} runs each")
        for label, command in (
            ("digestmail --help", [DIGESTMAIL, "--help"]),
            ("digestmail issue check", [DIGESTMAIL, "issue", "check", str(EXAMPLE)]),
        ):
            walls, cpus = timed(command, env, args.runs)
            print(
                f"{label:24} median {statistics.median(walls):.3f} s "
                f"(fastest {min(walls):.3f} s, slowest {max(walls):.3f} s); "
                f"CPU median {statistics.median(cpus):.3f} s"
            )
    print("load average at end: " + "/".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
