"""Binder (repo2docker) builds the same environment as `make install`."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def test_binder_installs_the_pinned_requirements():
    # pip resolves the nested -r relative to binder/; with --no-index and every pin already in
    # this environment, a dry run succeeds only if the file resolves to exactly these pins.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "-r", str(BINDER / "requirements.txt")],
        capture_output=True, text=True, cwd="/",
    )
    assert result.returncode == 0, result.stderr
    assert "Would install" not in result.stdout, result.stdout
    assert "jupyterlab-myst" in result.stdout


def test_binder_python_is_one_the_project_supports():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    version = re.fullmatch(r"python-(\d+)\.(\d+)", runtime)
    assert version, f"binder/runtime.txt: expected python-X.Y, got {runtime!r}"
    minimum = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert minimum == ">=3.11"
    assert (int(version[1]), int(version[2])) >= (3, 11)


def test_binder_installs_the_library_after_the_requirements():
    post_build = BINDER / "postBuild"
    assert post_build.stat().st_mode & 0o111, "binder/postBuild must be executable"
    subprocess.run(["bash", "-n", str(post_build)], check=True)
    commands = [line for line in post_build.read_text().splitlines() if line and not line.startswith("#")]
    assert "python -m pip install --no-deps ." in commands
