"""Time every chapter, executed top to bottom as a reader would (one fresh kernel each), and
print the README's budget table.

    python benchmarks/chapter_times.py [--cold | --cold-from BUILD] [--make-test SECONDS] [chapters/...]

Without ``--cold`` each chapter runs once with the models already in the zoo's cache (warm).
With ``--cold`` the zoo gets an empty cache first (a temporary ``$DIFFUSION_LIB_HOME``): each
chapter runs cold (training the models it is the first to load), then again warm. With
``--cold-from BUILD`` the cold times are those of the book build whose execution cache is in
``BUILD`` (``make test`` executes every chapter once, cold, in a fresh clone:
``_build/.jupyter_cache``), and the models are those in ``$DIFFUSION_LIB_HOME``. Prints one
row per chapter (seconds cold and warm, number of check lines, status), each zoo model's
training time (from its record), and, given the measured wall time of ``make test``, a
projection for all 16 chapters under the budgets of the developers' guide. Exits non-zero if
any chapter fails. Chapters are converted with jupytext into a temporary folder; nothing is
written into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
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


# Budgets of the developers' guide on the CI machine (2 cores), per chapter and per zoo model.
CHAPTERS_PLANNED = 16
CHAPTER_COLD_BUDGET_S = 180  # ≤ 3 minutes cold beyond its models
MODEL_BUDGET_S = 300  # any zoo model ≤ 5 minutes to train
MAKE_TEST_BUDGET_S = 45 * 60
# Zoo models the open chapter issues plan (8: score and flow models; 10: scenes-clip; 11: a
# conditional DDPM and a noisy classifier; 12: VAE and latent model; 13: prior and decoder;
# 14: none; 15: audio and video; 16: one scaling series): a count to project, not a promise.
MODELS_PLANNED = 12


def zoo_records(home: Path) -> list[dict]:
    """The training records of the models cached in ``home`` (name, seed, seconds)."""
    rows = []
    for path in sorted(home.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and "train_seconds" in record and "config" in record:
            rows.append(
                {
                    "name": record["name"],
                    "seed": record["config"]["train"]["seed"],
                    "seconds": record["train_seconds"],
                    "device": record.get("device", "cpu"),
                }
            )
    return rows


def build_times(build: Path) -> dict[str, float]:
    """{page: seconds} of each page's execution in a book build (scripts/test_summary.py reads
    them the same way for make test's summary)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("test_summary", ROOT / "scripts" / "test_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.execution_times(build)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="chapter sources (default: all)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    parser.add_argument("--cold", action="store_true", help="start from an empty model cache")
    parser.add_argument("--cold-from", type=Path, metavar="BUILD", help="cold times of a book build's cache")
    parser.add_argument("--make-test", type=float, help="the measured wall time of make test, to project")
    args = parser.parse_args(argv)
    chapters = args.chapters or sorted((ROOT / "chapters").glob("[0-9][0-9]_*.py"))
    failed = False
    with tempfile.TemporaryDirectory() as workdir, tempfile.TemporaryDirectory() as empty:
        if args.cold:
            os.environ["DIFFUSION_LIB_HOME"] = empty  # the kernels inherit it
        from diffusion_lib import zoo

        home = zoo.cache_dir()
        built = build_times(args.cold_from) if args.cold_from else {}
        rows = []
        for source in chapters:
            cold = run_chapter(source, Path(workdir), args.timeout) if args.cold else None
            found = [seconds for page, seconds in built.items() if page.endswith(f"chapters/{source.stem}")]
            if found:
                cold = (found[0], 0, "ok")
            warm = run_chapter(source, Path(workdir), args.timeout)
            status = cold[2] if cold and cold[2] != "ok" else warm[2]
            failed |= status != "ok"
            rows.append((source.stem, cold[0] if cold else None, warm[0], warm[1], status))
            print(f"{source.stem}: cold {cold[0] if cold else float('nan'):.1f} s, warm {warm[0]:.1f} s, "
                  f"{warm[1]} checks, {status}", file=sys.stderr, flush=True)  # fmt: skip
        models = sorted(zoo_records(home), key=lambda m: (m["name"], m["seed"]))

    print("| chapter | cold s | warm s | checks | status | budget |")
    print("|---------|--------|--------|--------|--------|--------|")
    for stem, cold, warm, checks, status in rows:
        over = [] if warm <= 60 else ["warm > 60 s"]
        print(f"| {stem} | {'—' if cold is None else f'{cold:.1f}'} | {warm:.1f} | {checks} | {status} | "
              f"{', '.join(over) or 'ok'} |")  # fmt: skip
    if models:
        print("\n| zoo model | seed | device | training s | budget |")
        print("|-----------|------|--------|------------|--------|")
        for m in models:
            verdict = "ok" if m["seconds"] <= MODEL_BUDGET_S else f"over {MODEL_BUDGET_S} s"
            print(f"| {m['name']} | {m['seed']} | {m['device']} | {m['seconds']:.1f} | {verdict} |")
    if args.make_test is not None:
        to_come = CHAPTERS_PLANNED - len(rows)
        at_budget = args.make_test + to_come * CHAPTER_COLD_BUDGET_S + MODELS_PLANNED * MODEL_BUDGET_S
        print(
            f"\nprojection at the budgets: make test {args.make_test:.0f} s now with {len(rows)} chapters; "
            f"+ {to_come} chapters × {CHAPTER_COLD_BUDGET_S} s + {MODELS_PLANNED} planned models × "
            f"{MODEL_BUDGET_S} s = {at_budget:.0f} s ({at_budget / 60:.0f} min) against "
            f"{MAKE_TEST_BUDGET_S / 60:.0f} min"
        )
        colds = [cold for _, cold, _, _, _ in rows if cold is not None]
        if colds:
            mean = sum(colds) / len(colds)
            like_today = args.make_test + to_come * mean
            print(
                f"projection like today's chapters: + {to_come} chapters × {mean:.0f} s (today's mean cold "
                f"chapter, its models included) = {like_today:.0f} s ({like_today / 60:.0f} min) against "
                f"{MAKE_TEST_BUDGET_S / 60:.0f} min"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
