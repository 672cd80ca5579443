"""bench/gpu_step.py needs CUDA; without it, it prints a clean skip message and exits 0."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_step_skips_without_cuda():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_step.py")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("bench/gpu_step.py: skipped: no CUDA device")
    assert json.loads(lines[-1]) == {"bench": "gpu_step", "skipped": "no CUDA device"}
    assert "Traceback" not in proc.stderr
