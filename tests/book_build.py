"""What the tests of the built book share: where it is, its pages, its configuration, and how
to find a Chromium to open it in.

The built-book tests (test_built_book.py, test_browser.py) run after the book build, as their
own step of `make test` (`make book-check`). They read `$BOOK_HTML` (default `_build/html`) and
skip when it is not there, unless `AIGC_REQUIRE_BOOK_CHECKS=1` (set by `make book-check`),
which turns a missing book, browser or Playwright into a failure.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html")).resolve()
SCREENSHOTS = HTML.parent / "screenshots"
REQUIRED = os.environ.get("AIGC_REQUIRE_BOOK_CHECKS", "") not in ("", "0")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def toc_pages() -> list[str]:
    """Every page of _toc.yml (the root first), as docnames (paths without suffix)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return pages


def source_of(docname: str) -> Path | None:
    """The page's source file, or None (test_repository.py reports pages that do not exist)."""
    for suffix in (".py", ".md", ".ipynb"):
        path = ROOT / f"{docname}{suffix}"
        if path.is_file():
            return path
    return None


def is_notebook_source(path: Path) -> bool:
    """Whether a page is a notebook: a chapter (.py), an .ipynb, or MyST markdown that
    declares a kernel (as MyST-NB decides)."""
    if path.suffix in (".py", ".ipynb"):
        return True
    head = path.read_text(encoding="utf-8")[:2000]
    return bool(re.match(r"---\n.*?^kernelspec:", head, re.S | re.M))


def notebook_pages() -> list[str]:
    return [d for d in toc_pages() if source_of(d) is not None and is_notebook_source(source_of(d))]


def chapter_pages() -> list[str]:
    return [d for d in toc_pages() if d.startswith("chapters/")]


def need(condition: bool, why: str) -> None:
    """Skip (or, under AIGC_REQUIRE_BOOK_CHECKS=1, fail) when a precondition is missing."""
    if condition:
        return
    if REQUIRED:
        pytest.fail(f"{why} (AIGC_REQUIRE_BOOK_CHECKS=1: required here)", pytrace=False)
    pytest.skip(why)


def need_built_book() -> None:
    need(
        (HTML / "index.html").is_file(),
        f"no built book in {HTML}: run `make book` (or set BOOK_HTML) first",
    )


def load_script(name: str):
    """Import scripts/NAME.py (the scripts folder is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chromium() -> str | None:
    """A Chromium or Chrome executable: $CHROMIUM, or the first of CHROMIUM_NAMES on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None
