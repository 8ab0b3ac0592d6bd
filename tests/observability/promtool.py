"""Runs promtool (Prometheus's rule checker and rule unit-test runner) on rule files the tests write.

A missing promtool fails the test that needs it, with how to get it: these checks are the proof that the
rules parse and fire as documented, so they are never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

INSTALL_HINT = (
    "promtool is not installed, and the alert-rule tests need it. Install Debian's prometheus package, which "
    "ships /usr/bin/promtool (as root: `apt-get update && apt-get install -y --no-install-recommends "
    "prometheus`; .ci/run does this on a fresh machine), or point PROMTOOL at a promtool binary."
)


def promtool_path() -> str:
    configured = os.environ.get("PROMTOOL")
    path = configured if configured and Path(configured).is_file() else shutil.which(configured or "promtool")
    if not path:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return path


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([promtool_path(), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def write_rule_file(path: Path, groups: list[dict]) -> Path:
    """A Prometheus rule file (JSON is YAML, and promtool reads both)."""
    path.write_text(json.dumps({"groups": groups}, indent=1))
    return path


def check_rules(*files: Path) -> subprocess.CompletedProcess:
    result = run("check", "rules", *map(str, files))
    assert result.returncode == 0, f"promtool check rules failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_rules(test_file: Path) -> subprocess.CompletedProcess:
    result = run("test", "rules", test_file.name, cwd=test_file.parent)
    assert result.returncode == 0, f"promtool test rules {test_file.name} failed:\n{result.stdout}\n{result.stderr}"
    return result


test_rules.__test__ = False  # a helper, not a pytest test
