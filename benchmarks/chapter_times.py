"""Time every chapter, executed top to bottom as a reader would (one fresh kernel each).

    python benchmarks/chapter_times.py [chapters/04_forward_process.py ...]

Prints one row per chapter (seconds, number of check lines, status) and exits non-zero if any
chapter fails. Chapters are converted with jupytext into a temporary folder; nothing is written
into the repository.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def run_chapter(source: Path, workdir: Path, timeout: int) -> tuple[float, int, str]:
    """Execute one chapter; return (seconds, number of ✓ lines printed, status)."""
    notebook = jupytext.read(source, fmt="py:percent")
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
        status = "ok"
    except Exception as err:  # report every failure, keep timing the rest
        status = f"FAILED: {type(err).__name__}"
    seconds = time.perf_counter() - start
    checks = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            checks += sum(1 for line in text.splitlines() if line.startswith("✓ "))
    nbformat.validate(notebook)
    return seconds, checks, status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="chapter sources (default: all)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    chapters = args.chapters or sorted((ROOT / "chapters").glob("[0-9][0-9]_*.py"))
    failed = False
    print(f"{'chapter':<34} {'seconds':>8} {'checks':>7}  status")
    with tempfile.TemporaryDirectory() as workdir:
        for source in chapters:
            seconds, checks, status = run_chapter(source, Path(workdir), args.timeout)
            failed |= status != "ok"
            print(f"{source.stem:<34} {seconds:8.1f} {checks:7d}  {status}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
