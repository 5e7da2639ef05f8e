"""``pip install ./sdk_python`` works in a fresh virtual environment, with nothing of the repository
around it: the package imports, its console script runs, and it does not drag the backend in."""

from __future__ import annotations

import json
import re
import subprocess
import venv
from pathlib import Path

import pytest

SDK = Path(__file__).parents[2] / "sdk_python"


@pytest.mark.slow
def test_pip_installs_the_sdk_into_a_fresh_virtual_environment(tmp_path):
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(SDK)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    check = (
        "import json, surge, importlib.metadata as m; "
        "print(json.dumps({'names': dir(surge), 'version': surge.__version__, "
        "'distribution': m.version('surge-sdk'), 'requires': m.requires('surge-sdk'), "
        "'requires_python': m.metadata('surge-sdk')['Requires-Python']}))"
    )
    imported = subprocess.run(
        [str(python), "-c", check], capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False
    )
    assert imported.returncode == 0, imported.stderr
    installed = json.loads(imported.stdout)
    assert {"Surge", "AsyncSurge", "MessageStream"} <= set(installed["names"])
    assert installed["version"] == installed["distribution"] == "0.1.0"
    # What it declares it needs: the three libraries it uses, and the Python it was written for.
    assert {re.split(r"[<>=!~ ;\[]", requirement)[0] for requirement in installed["requires"]} == {
        "httpx",
        "msgspec",
        "websockets",
    }
    assert installed["requires_python"] == ">=3.11"

    packages = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.lower()
    assert "surge-sdk==0.1.0" in packages and "litestar" not in packages and "surge-backend" not in packages

    chat = subprocess.run(
        [str(environment / "bin" / "surge-chat"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert chat.returncode == 0 and "surge-chat" in chat.stdout
