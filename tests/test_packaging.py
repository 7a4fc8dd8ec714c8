"""What a deployment installs is what the tests ran.

The lock files pin every package pyproject.toml asks for (the Dockerfile installs
``requirements.lock``, ``make test`` and CI ``requirements-dev.lock``, and the runtime
pins are the same in both), and the wheel the Dockerfile builds carries everything the
service reads at run time: templates, the admin's static files, the migrations.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name.split("[")[0])] = version.split(";")[0].strip()
    return pins


def _project() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = data["project"]
    return {"runtime": project["dependencies"], "dev": project["optional-dependencies"]["dev"]}


@pytest.mark.parametrize(
    ("group", "lock"), [("runtime", "requirements.lock"), ("dev", "requirements-dev.lock")]
)
def test_the_lock_pins_every_dependency_within_what_pyproject_allows(group: str, lock: str) -> None:
    pins = _pins(ROOT / lock)
    problems = []
    for spec in _project()[group]:
        requirement = Requirement(spec)
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name} is not in {lock}: run `make lock`")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement.name}=={pinned} in {lock} is outside {spec!r}")
    assert problems == []


def test_the_deployment_installs_the_versions_the_tests_ran() -> None:
    runtime, dev = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-dev.lock")
    assert runtime, "requirements.lock pins nothing"
    differ = {name: (v, dev.get(name)) for name, v in runtime.items() if dev.get(name) != v}
    assert differ == {}, "requirements.lock and requirements-dev.lock disagree: run `make lock`"


@pytest.mark.slow
def test_the_wheel_runs_the_service_without_the_source_tree(tmp_path: Path) -> None:
    """Build the wheel as the Dockerfile does and run from it, away from ``src/``."""
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("digestmail-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-t", str(site), wheel],
        check=True,
        capture_output=True,
        timeout=300,
    )
    work = tmp_path / "work"
    work.mkdir()
    script = f"""
import sys
from pathlib import Path
import digestmail
assert Path(digestmail.__file__).is_relative_to({str(site)!r}), digestmail.__file__
from digestmail.cli import main
for args in (["init"], ["issue", "add", {str(ROOT / "examples" / "vol-4.1.md")!r}, "--ready"]):
    sys.argv = ["digestmail", *args]
    try:
        main()
    except SystemExit as exit:
        assert not exit.code, (args, exit.code)
from fastapi.testclient import TestClient
from digestmail.web import create_app
with TestClient(create_app()) as client:
    for path in ("/subscribe", "/admin/login", "/static/admin.css", "/static/site.css"):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
print("ok")
"""
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "DIGESTMAIL_DATABASE_URL": f"sqlite:///{work / 'subscribers.db'}",
        "DIGESTMAIL_MEDIA_DIR": str(ROOT / "examples"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
