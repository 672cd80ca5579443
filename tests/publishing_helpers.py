"""Install a plugin folder with pip into a private target and run commands that see it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def pip_install(src: Path, target: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(src)],
        check=True,
        capture_output=True,
    )


def run_with(target: Path, args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(target) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def listed_plugins(target: Path) -> dict[str, dict]:
    out = run_with(target, ["-m", "grpo_zoo", "plugins", "--json"])
    assert out.returncode == 0, out.stderr
    return {row["name"]: row for row in json.loads(out.stdout)}
