"""uv.lock pins every package with hashes and is in step with pyproject.toml."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
UV = Path(sys.executable).with_name("uv")


def test_every_locked_package_is_pinned_with_hashes():
    packages = [p for p in LOCK["package"] if "virtual" not in p["source"]]
    assert len(packages) > 90
    for package in packages:
        files = package.get("wheels", []) + ([package["sdist"]] if "sdist" in package else [])
        assert package["version"] and files, package["name"]
        assert all(f["hash"].startswith("sha256:") for f in files), package["name"]


@pytest.mark.skipif(not UV.exists(), reason="no uv beside this Python (not the Makefile's venv)")
def test_lock_matches_pyproject():
    # The check CI runs first, offline: an up-to-date lock needs no index to say so.
    env = {**os.environ, "UV_PYTHON": sys.executable, "UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1"}
    result = subprocess.run(
        [str(UV), "lock", "--check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"uv.lock is stale: run make lock\n{result.stderr}"


def test_uv_bootstrap_installs_the_locked_uv_by_its_hashes():
    out = subprocess.run(
        [sys.executable, "tools/uv_requirement.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    uv = next(p for p in LOCK["package"] if p["name"] == "uv")
    assert out[0] == f"uv=={uv['version']}"
    assert set(out[1:]) == {f"--hash={wheel['hash']}" for wheel in uv["wheels"]}
