"""The benchmark scripts run against the library as it is now (a renamed API fails here, not
when someone next measures): each script that is cheap at tiny sizes runs once, in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DIFFUSION_LIB_HOME": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_throughput_runs_at_a_tiny_size(tmp_path):
    result = run("throughput.py", "--steps", "2", "--samples", "2", "--threads", "1", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["peak", "training digits-ddpm (batch 128)",
                                                      "forward + backward alone", "sampling"]  # fmt: skip
    assert "% of the matmul peak" in lines[1]
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir()), "nothing trained"


def test_every_benchmark_prints_its_help(tmp_path):
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        result = run(script.name, "--help", tmp_path=tmp_path)
        assert result.returncode == 0 and "usage:" in result.stdout, (script.name, result.stderr)
