"""A fresh virtual environment with only core installed, for plugins installed the way users do.

Building one from the package index would re-download torch and friends on every run, so
the fresh venv sees this interpreter's third-party packages through a folder of symlinks
(``deps.pth``) that leaves out every grpo-zoo distribution and editable hook; core itself is
then installed into it with pip (a regular, non-editable install), and plugins on top.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_OURS = ("grpo_zoo", "grpo-zoo", "__editable__", "_grpo_zoo", "__pycache__")


def _site_dirs() -> list[Path]:
    """This interpreter's site-packages folders, in import order (a venv's own, a system or user
    site it inherits): torch may live in any of them."""
    paths = sysconfig.get_paths()
    found = [paths["purelib"], paths["platlib"], *site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        found.append(site.getusersitepackages())
    seen, out = set(), []
    for p in map(Path, found):
        if p.is_dir() and p.resolve() not in seen:
            seen.add(p.resolve())
            out.append(p)
    return out


class FreshEnv:
    def __init__(self, base: Path):
        self.base = base
        venv.create(base / "venv", with_pip=False, symlinks=os.name != "nt")
        bindir = "Scripts" if os.name == "nt" else "bin"
        self.python = base / "venv" / bindir / ("python.exe" if os.name == "nt" else "python")
        site = Path(self.run(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
        deps = base / "deps"
        deps.mkdir()
        for host in _site_dirs():
            for entry in host.iterdir():
                if entry.name.startswith(_OURS) or entry.suffix == ".pth" or (deps / entry.name).exists():
                    continue
                (deps / entry.name).symlink_to(entry)
        (site / "deps.pth").write_text(str(deps) + "\n")
        core = base / "core-src"  # a copy: building in the checkout would leave build/ behind
        shutil.copytree(ROOT / "core", core / "core", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, core / name)
        self.pip_install(core)

    def run(self, args: list[str], cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        out = subprocess.run([str(self.python), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, args))} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return out

    def pip_install(self, src: Path) -> None:
        # --no-deps: grpo-zoo's dependencies come through deps.pth; --no-build-isolation: no index needed
        self.run(["-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-cache-dir", str(src)],
                 cwd=self.base)

    def distributions(self) -> set[str]:
        code = "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"
        return {line.strip() for line in self.run(["-c", code]).stdout.splitlines() if line.strip()}

    def plugins(self) -> dict[str, dict]:
        out = self.run(["-m", "grpo_zoo", "plugins", "--json"])
        return {row["name"]: row for row in json.loads(out.stdout)}
