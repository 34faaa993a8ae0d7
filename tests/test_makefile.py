"""`make run`: what its recipe runs, with a stand-in for the venv's python that prints the
environment it was given instead of starting Django."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def stand_in_bin(tmp_path):
    python = tmp_path / "python"
    python.write_text('#!/bin/sh\necho "SITE_URL=$SITE_URL $*"\n')
    python.chmod(0o755)
    # `run` needs the installed venv ($(STAMP)); uv is only its order-only prerequisite.
    (tmp_path / "uv").symlink_to(ROOT / ".venv" / "bin" / "uv")
    return tmp_path


def _make_run(stand_in_bin, env, *args) -> list[str]:
    out = subprocess.run(
        ["make", "--no-print-directory", "run", f"BIN={stand_in_bin}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [line for line in out.splitlines() if line.startswith("SITE_URL=")]


def test_make_run_mails_links_to_the_port_it_serves(stand_in_bin):
    env = {k: v for k, v in os.environ.items() if k != "SITE_URL"}
    ran = _make_run(stand_in_bin, env, "PORT=8611")
    assert ran[-1] == "SITE_URL=http://127.0.0.1:8611 manage.py runserver 127.0.0.1:8611"
    assert all(line.startswith("SITE_URL=http://127.0.0.1:8611 ") for line in ran), ran
    ran = _make_run(stand_in_bin, env, "HOST=0.0.0.0", "PORT=9000")
    assert ran[-1] == "SITE_URL=http://0.0.0.0:9000 manage.py runserver 0.0.0.0:9000"


def test_make_run_keeps_a_site_url_already_set(stand_in_bin):
    env = {**os.environ, "SITE_URL": "https://meet.example.org"}
    ran = _make_run(stand_in_bin, env, "PORT=8611")
    assert ran[-1] == "SITE_URL=https://meet.example.org manage.py runserver 127.0.0.1:8611"
