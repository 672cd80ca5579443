"""For tests that start grpo-zoo in subprocesses (several ranks): a plugin installed for them through a
dist-info on PYTHONPATH, and the environment those processes run in."""
from __future__ import annotations

import os
from pathlib import Path


def plugin_env(tmp_path: Path, module: str, cls: str, source: str) -> dict:
    """``os.environ`` plus a site folder holding ``module`` (entry point ``module = module:cls``), one torch
    thread per process (two ranks on a small machine) and no CUDA device."""
    site = tmp_path / "site"
    dist = site / f"{module}-0.0.1.dist-info"
    dist.mkdir(parents=True, exist_ok=True)  # several runs of one test share it
    (site / f"{module}.py").write_text(source)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.0.1\n")
    (dist / "entry_points.txt").write_text(f"[grpo_zoo]\n{module} = {module}:{cls}\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env
