"""`make setup` installs the project, so `tenantctl` is a console script in .venv/bin (fleet rule 9).

The install runs as the Makefile writes it, into a throwaway virtualenv that borrows the shared one's
packages: the shared .venv itself is never changed by a test.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.conftest import ROOT


def _makefile_install_command() -> list[str]:
    """The Makefile's editable install of the project, with its interpreter left out."""
    [line] = [line.strip() for line in (ROOT / "Makefile").read_text().splitlines()
              if re.search(r"pip install .*-e \.", line)]
    return line.split()[1:]  # "$(PY) -m pip install ... -e ." -> "-m pip install ... -e ."


def test_setup_installs_tenantctl_as_a_console_script(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    site.mkdir(parents=True, exist_ok=True)
    (site / "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # pip, setuptools, typer, ...
    python = venv / "bin" / "python"
    subprocess.run([str(python), *[w for w in _makefile_install_command() if w != "--quiet"]], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    script = venv / "bin" / "tenantctl"
    assert script.is_file()
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "Usage: tenantctl" in shown.stdout and "rehearse" in shown.stdout


def test_the_readme_says_how_to_put_the_venv_on_path():
    assert 'export PATH="$PWD/.venv/bin:$PATH"' in (ROOT / "README.md").read_text()
