"""How long `digestmail subscribers import` takes for 100,000 rows (goal: under 30 s).

Usage: .venv/bin/python bench/import.py [ROWS] [DATABASE_URL]
Runs the real command twice on a fresh database (first import, then the idempotent
re-import) and prints both times.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{folder / 'bench.db'}"
        path = folder / "list.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["email", "name"])
            for i in range(rows):
                writer.writerow([f"Reader.{i}@Example{i % 97}.org", f"Reader {i}"])
        env = {**os.environ, "DIGESTMAIL_DATABASE_URL": url, "DIGESTMAIL_OUTBOX_DIR": tmp}
        exe = str(Path(sys.executable).with_name("digestmail"))
        subprocess.run([exe, "init"], env=env, check=True, capture_output=True)
        for label in ("first import", "re-import"):
            start = time.perf_counter()
            subprocess.run(
                [exe, "subscribers", "import", str(path)], env=env, check=True, capture_output=True
            )
            elapsed = time.perf_counter() - start
            print(f"{label}: {rows:,} rows in {elapsed:.1f} s ({rows / elapsed:,.0f} rows/s)")


if __name__ == "__main__":
    main()
