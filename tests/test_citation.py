"""CITATION.cff validates against the Citation File Format 1.2.0 schema and agrees with the project.

The schema is vendored (tests/data, from the citation-file-format project, CC BY 4.0) so the
check needs no network.
"""

import copy
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

import bptt_lib

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "tests" / "data" / "citation-file-format-1.2.0.schema.json").read_text())


def _citation():
    # CFF dates and versions must stay strings; YAML's loader would turn 0.2.0-like values into floats.
    return yaml.load((ROOT / "CITATION.cff").read_text(), Loader=yaml.BaseLoader)


def test_citation_file_validates_against_the_schema():
    jsonschema.validate(_citation(), SCHEMA)


def test_the_schema_check_can_fail():
    broken = copy.deepcopy(_citation())
    del broken["authors"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_citation_agrees_with_pyproject_and_config():
    cff = _citation()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert cff["version"] == version
    assert bptt_lib.__version__ == version
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cff["repository-code"] == config["repository"]["url"]
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text()
