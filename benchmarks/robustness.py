"""Execute the chapters under several training-seed shifts and tabulate their outcome claims.

A claim about a trained model must hold for other training runs too (another seed, processor
or torch build). ``DIFFUSION_LIB_SEED_SHIFT=k`` moves every training seed in the book
(:mod:`diffusion_lib.seeds`); this script executes each chapter top to bottom under each shift
``k`` (a Jupyter kernel per chapter, as nbval and the book build do), and prints

1. per chapter and shift: passed or failed (with the first failing line) and the wall time;
2. every outcome claim (the lines ``check_outcome`` prints) with its measured value under each
   shift, next to the range the chapter allows.

Models come from the zoo's cache (``$DIFFUSION_LIB_HOME``); a shift's models are trained on
first use, so the first run of a shift takes the zoo's training time too. Results are kept in
``build/robustness/`` (one JSON file per chapter and shift, reused while the chapter's source
and the library are unchanged; ``--rerun`` executes again).

Usage (from the repository root, in the book's environment)::

    python benchmarks/robustness.py                       # chapters/*.py under shifts 0, 1, 2
    python benchmarks/robustness.py --shifts 1 --chapters 03 09
    python benchmarks/robustness.py --report-only         # the tables from the kept results

Exit status: 0 when every chapter passed under every shift, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffusion_lib.checks import OUTCOME_PREFIX  # noqa: E402
from diffusion_lib.seeds import ENV_SEED_SHIFT  # noqa: E402

RESULTS = ROOT / "build" / "robustness"
CELL_TIMEOUT = 900  # seconds: a cold cell may train a zoo model (each ≤ 5 min on 2 cores)
OUTCOME = re.compile(
    re.escape(OUTCOME_PREFIX) + r"(?P<claim>.*): measured (?P<value>\S+), allowed (?P<allowed>.*)$"
)


def source_hash(chapter: Path) -> str:
    """A hash of the chapter and the library: a kept result is reused only while both match."""
    digest = hashlib.sha256(chapter.read_bytes())
    for module in sorted((ROOT / "diffusion_lib").rglob("*.py")):
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]


def chapter_files(selected: list[str]) -> list[Path]:
    """The chapters whose file names start with one of ``selected`` (all when empty)."""
    files = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.py"))
    if selected:
        files = [f for f in files if any(f.name.startswith(s) for s in selected)]
        if not files:
            raise SystemExit(f"--chapters must name chapters in chapters/, got {' '.join(selected)}")
    return files


def printed_lines(notebook) -> list[str]:
    """The stream output of every cell, as lines, with wrapped check lines joined again."""
    lines: list[str] = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream" or output.get("name") != "stdout":
                continue
            for line in output.get("text", "").splitlines():
                if line.startswith("    ") and lines and lines[-1].startswith(("✓", "✗")):
                    lines[-1] += " " + line.strip()  # a check line wrapped at the page width
                else:
                    lines.append(line)
    return lines


def execute(chapter: Path, shift: int) -> dict:
    """Run one chapter in a fresh kernel under ``shift``; what passed, what it claimed, how long."""
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = jupytext.read(chapter, fmt="py:percent")
    os.environ[ENV_SEED_SHIFT] = str(shift)  # the kernel inherits this process's environment
    os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")  # the kernel of this environment
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(chapter.parent)}},
    )
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as err:
        failed = [line for line in str(err).splitlines() if line.startswith(("✗", "AssertionError"))]
        error = failed[0] if failed else str(err).strip().splitlines()[-1]
    seconds = time.perf_counter() - start
    outcomes = []
    for line in printed_lines(notebook):
        match = OUTCOME.match(line)
        if match:
            outcomes.append(
                {"claim": match["claim"], "value": float(match["value"]), "allowed": match["allowed"]}
            )
    return {
        "chapter": chapter.stem,
        "shift": shift,
        "source": source_hash(chapter),
        "passed": error is None,
        "error": error,
        "seconds": round(seconds, 1),
        "outcomes": outcomes,
    }


def report(results: list[dict], shifts: list[int]) -> str:
    """The two Markdown tables: chapters × shifts, then outcome claims × shifts."""
    by_key = {(r["chapter"], r["shift"]): r for r in results}
    chapters = sorted({r["chapter"] for r in results})
    head = "| chapter | " + " | ".join(f"shift {s}" for s in shifts) + " |"
    rule = "|---|" + "---|" * len(shifts)
    rows = [head, rule]
    for name in chapters:
        cells = []
        for s in shifts:
            r = by_key.get((name, s))
            if r is None:
                cells.append("—")
            elif r["passed"]:
                cells.append(f"pass ({r['seconds']:.0f} s)")
            else:
                cells.append(f"**FAIL** ({r['error'][:60]})")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    claims: dict[tuple[str, str], dict] = {}
    for r in results:
        for o in r["outcomes"]:
            slot = claims.setdefault((r["chapter"], o["claim"]), {"allowed": o["allowed"]})
            slot[r["shift"]] = o["value"]
    rows += [
        "",
        "| chapter | outcome claim | " + " | ".join(f"shift {s}" for s in shifts) + " | allowed |",
        "|---|---|" + "---|" * len(shifts) + "---|",
    ]
    for (name, claim), values in sorted(claims.items()):
        cells = [f"{values[s]:.4g}" if s in values else "—" for s in shifts]
        rows.append(f"| {name[:2]} | {claim} | " + " | ".join(cells) + f" | {values['allowed']} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shifts", type=int, nargs="+", default=[0, 1, 2], help="seed shifts (default 0 1 2)"
    )
    parser.add_argument(
        "--chapters", nargs="*", default=[], help="chapter prefixes, e.g. 03 09 (default all)"
    )
    parser.add_argument("--rerun", action="store_true", help="execute again even where a result is kept")
    parser.add_argument("--report-only", action="store_true", help="only print the tables of kept results")
    args = parser.parse_args(argv)
    if any(s < 0 for s in args.shifts):
        parser.error(f"--shifts must be whole numbers >= 0, got {args.shifts}")
    results = []
    for shift in args.shifts:
        for chapter in chapter_files(args.chapters):
            path = RESULTS / f"shift-{shift}" / f"{chapter.stem}.json"
            kept = json.loads(path.read_text()) if path.is_file() else None
            if kept and (args.report_only or (not args.rerun and kept.get("source") == source_hash(chapter))):
                results.append(kept)
                continue
            if args.report_only:
                continue
            print(f"[robustness] {chapter.stem} under shift {shift} …", file=sys.stderr, flush=True)
            result = execute(chapter, shift)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=1, ensure_ascii=False))
            status = "passed" if result["passed"] else f"FAILED: {result['error']}"
            print(
                f"[robustness] {chapter.stem} shift {shift}: {status} ({result['seconds']} s)",
                file=sys.stderr,
                flush=True,
            )
            results.append(result)
    print(report(results, args.shifts))
    return 0 if results and all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
