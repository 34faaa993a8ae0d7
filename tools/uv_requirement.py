"""Print uv's pin from uv.lock as a hash-checked pip requirement (the Makefile's bootstrap).

uv installs everything else from the lock; this is how the venv gets the uv that the lock
names, by pip with --require-hashes, before there is a uv to do it.
"""

import sys
import tomllib
from pathlib import Path

lock = tomllib.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "uv.lock").read_text())
uv = next(p for p in lock["package"] if p["name"] == "uv")
print(f"uv=={uv['version']}", *(f"--hash={wheel['hash']}" for wheel in uv["wheels"]))
