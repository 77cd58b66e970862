"""Print the closing summary of `make test`.

    python scripts/test_summary.py RECORD_FILE [JUNIT_XML ...]

RECORD_FILE holds one line per step written by scripts/step.sh (label, seconds, PASS/FAIL,
exit status). Each JUNIT_XML is a pytest --junitxml report. Each chapter's execution time comes
from the book build's execution cache (`_build/.jupyter_cache`, or `.jupyter_cache-shift-k`
under a seed shift k, as scripts/book_publishing.py sets it), where the build ran it. The last
line is the plain test count ("tests: N passed, N failed, N skipped") over all the pytest
reports. Exits 0; the Makefile decides the exit status of `make test` from the steps themselves.
"""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def read_steps(path: Path) -> list[tuple[str, float, str, int]]:
    steps = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            label, seconds, outcome, status = line.split("\t")
            steps.append((label, float(seconds), outcome, int(status)))
    return steps


def read_junit(path: Path):
    """Return (passed, failed, skipped) for one pytest junit report."""
    root = ET.parse(path).getroot()
    passed = failed = skipped = 0
    for case in root.iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            failed += 1
        elif "skipped" in kinds:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


ROOT = Path(__file__).resolve().parents[1]


def execution_times(build: Path) -> dict[str, float]:
    """{page: seconds} of the latest execution of each notebook page in the book's cache."""
    shift = os.environ.get("DIFFUSION_LIB_SEED_SHIFT", "").strip()
    name = ".jupyter_cache" if shift in ("", "0") else f".jupyter_cache-shift-{shift}"
    if not (build / name).is_dir():
        return {}
    try:
        from jupyter_cache import get_cache
    except ImportError:
        return {}
    latest: dict[str, tuple] = {}
    for record in get_cache(str(build / name)).list_cache_records():
        path = Path(record.uri)
        page = (path.relative_to(ROOT) if path.is_relative_to(ROOT) else path).with_suffix("")
        page = page.as_posix()
        if page not in latest or record.created > latest[page][0]:
            latest[page] = (record.created, float(record.data.get("execution_seconds", 0.0)))
    return {page: seconds for page, (_, seconds) in sorted(latest.items())}


def main(argv: list[str]) -> int:
    steps = read_steps(Path(argv[1]))
    reports = [Path(p) for p in argv[2:] if Path(p).exists()]

    print("\n" + "=" * 30 + " make test summary " + "=" * 30)
    width = max([len(s[0]) for s in steps] + [10])
    for label, seconds, outcome, status in steps:
        note = "" if status == 0 else f"  (exit status {status})"
        print(f"  {label:<{width}}  {outcome}  {seconds:8.1f} s{note}")
    print(f"  {'total':<{width}}        {sum(s[1] for s in steps):8.1f} s")

    totals = [0, 0, 0]
    for report in reports:
        passed, failed, skipped = read_junit(report)
        totals = [totals[0] + passed, totals[1] + failed, totals[2] + skipped]
    times = execution_times(ROOT / "_build")
    if times:
        print("  execution times (book build, models trained on first use included):")
        for name, seconds in times.items():
            print(f"    {name:<40} {seconds:8.1f} s")
    print(f"tests: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
