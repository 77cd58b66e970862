"""Print the closing summary of `make test`.

    python scripts/test_summary.py RECORD_FILE [JUNIT_XML ...]

RECORD_FILE holds one line per step written by scripts/step.sh (label, seconds, PASS/FAIL,
exit status). Each JUNIT_XML is a pytest --junitxml report; the notebook report (nbval) also
gives each chapter's execution time. The last line is the plain test count
("tests: N passed, N failed, N skipped") over all the pytest reports. Exits 0; the Makefile
decides the exit status of `make test` from the steps themselves.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path


def read_steps(path: Path) -> list[tuple[str, float, str, int]]:
    steps = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            label, seconds, outcome, status = line.split("\t")
            steps.append((label, float(seconds), outcome, int(status)))
    return steps


def read_junit(path: Path):
    """Return (passed, failed, skipped, {file: seconds}) for one pytest junit report."""
    root = ET.parse(path).getroot()
    passed = failed = skipped = 0
    per_file: dict[str, float] = defaultdict(float)
    for case in root.iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            failed += 1
        elif "skipped" in kinds:
            skipped += 1
        else:
            passed += 1
        # nbval names its items "<path>::Cell N"; the classname is the dotted path.
        name = case.get("file") or case.get("classname", "?")
        per_file[name] += float(case.get("time", 0.0))
    return passed, failed, skipped, dict(per_file)


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
        passed, failed, skipped, per_file = read_junit(report)
        totals = [totals[0] + passed, totals[1] + failed, totals[2] + skipped]
        if "notebook" in report.stem:
            print("  chapter execution times (nbval):")
            for name, seconds in sorted(per_file.items()):
                chapter = name.removeprefix("build.notebooks.").removesuffix(".ipynb")
                print(f"    {chapter:<40} {seconds:8.1f} s")
    print(f"tests: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
