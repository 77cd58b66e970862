"""The built book, read as files (`make book-check` runs this after the book build).

Every notebook page's Colab and Binder buttons open a notebook that the build produced and that
the publish script puts on the notebooks branch, and its download menu offers the same notebook;
no page loads a script from another host; MathJax and mermaid are served from `_static/`; the
execution report describes the build. Skips when there is no built book (see book_build.py).
"""

from __future__ import annotations

import html as htmllib
import importlib.metadata as md
import platform
import posixpath
import re
from pathlib import Path
from urllib.parse import urlsplit

import jupytext
import nbformat
import pytest
from book_build import (
    HTML,
    ROOT,
    chapter_pages,
    config,
    load_script,
    need_built_book,
    notebook_pages,
    source_of,
    toc_pages,
)

REPORT_PAGE = "book/execution_report"
publish = load_script("publish_notebooks")


@pytest.fixture(autouse=True)
def built_book():
    need_built_book()


def page_html(docname: str) -> str:
    path = HTML / f"{docname}.html"
    assert path.is_file(), f"page {docname!r} of _toc.yml is not in the built book ({path})"
    return path.read_text(encoding="utf-8")


def hrefs(text: str) -> list[str]:
    return [htmllib.unescape(h) for h in re.findall(r'<a\s[^>]*?href="([^"]+)"', text)]


def cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """The notebooks as scripts/publish_notebooks.py lays them out on the notebooks branch."""
    out = tmp_path_factory.mktemp("notebooks-branch")
    publish.lay_out(HTML, out, publish.book_folder(ROOT))
    return out


def test_every_chapter_is_a_notebook_page():
    assert chapter_pages(), "the book has no chapter"
    assert set(chapter_pages()) <= set(notebook_pages())


@pytest.mark.parametrize("docname", notebook_pages())
def test_launch_buttons_open_the_notebook_that_the_build_produced(docname, published):
    cfg = config()
    owner, repo = urlsplit(cfg["repository"]["url"]).path.strip("/").split("/")
    branch = cfg["sphinx"]["config"]["aigc_notebooks_branch"]
    links = hrefs(page_html(docname))

    colab_prefix = cfg["launch_buttons"]["colab_url"].rstrip("/") + "/github/"
    colab = sorted({h for h in links if h.startswith(colab_prefix)})
    assert len(colab) == 1, f"{docname}: expected one Colab link, found {colab}"
    m = re.fullmatch(re.escape(colab_prefix) + r"([^/]+)/([^/]+)/blob/([^/]+)/(.+)", colab[0])
    assert m, f"{docname}: Colab link is not .../github/OWNER/REPO/blob/BRANCH/PATH: {colab[0]}"
    assert m.group(1, 2, 3) == (owner, repo, branch), f"{docname}: {colab[0]}"
    path = m.group(4)
    book = publish.book_folder(ROOT)
    expected = f"{book}/{docname}.ipynb" if book else f"{docname}.ipynb"
    assert path == expected, f"{docname}: Colab opens {path}, not the page's notebook"

    # The target exists in what gets published, and it is the chapter itself.
    target = published / path
    assert target.is_file(), f"{docname}: the notebooks branch would not hold {path}"
    nb = nbformat.read(target, as_version=4)
    nbformat.validate(nb)
    assert cells(nb) == cells(jupytext.read(source_of(docname))), f"{path} is not {docname}'s notebook"
    made = ROOT / "build" / "notebooks" / Path(path).name
    if docname.startswith("chapters/") and made.is_file():  # `make notebooks` (for nbval)
        assert cells(nb) == cells(nbformat.read(made, as_version=4)), f"{path} differs from {made}"

    binder = [h for h in links if h.startswith(cfg["launch_buttons"]["binderhub_url"])]
    assert binder == [
        f"{cfg['launch_buttons']['binderhub_url']}/v2/gh/{owner}/{repo}/{branch}?urlpath=lab/tree/{path}"
    ], f"{docname}: Binder links {binder}"

    # The download menu offers the same notebook, from the site itself.
    downloads = [h for h in links if h.endswith(".ipynb") and "_sources/" in h]
    assert len(downloads) == 1, f"{docname}: expected one .ipynb download, found {downloads}"
    local = HTML / posixpath.normpath(posixpath.join(posixpath.dirname(docname), downloads[0]))
    assert local.is_file() and local.read_bytes() == target.read_bytes()


REMOTE = r"""(?:https?:)?//"""
SCRIPT_PATTERNS = {
    "script src": re.compile(r"<script\b[^>]*\bsrc=[\"']?" + REMOTE + r"[^\"'\s>]+", re.I),
    "ES module import": re.compile(r"\bimport\b[^;<]{0,200}?\bfrom\s*[\"']" + REMOTE + r"[^\"']+"),
    "dynamic import": re.compile(r"\bimport\(\s*[\"']" + REMOTE + r"[^\"']+"),
    "stylesheet": re.compile(
        r"<link\b(?=[^>]*\brel=[\"']?stylesheet)[^>]*\bhref=[\"']?" + REMOTE + r"[^\"'\s>]+", re.I
    ),
}


def test_no_page_loads_a_script_from_another_host():
    pages = sorted(HTML.rglob("*.html"))
    assert pages
    found = []
    for page in pages:
        text = page.read_text(encoding="utf-8", errors="replace")
        for kind, pattern in SCRIPT_PATTERNS.items():
            found += [f"{page.relative_to(HTML)}: {kind}: {m.group(0)[:160]}" for m in pattern.finditer(text)]
    for css in sorted((HTML / "_static").rglob("*.css")):
        text = css.read_text(encoding="utf-8", errors="replace")
        found += [
            f"{css.relative_to(HTML)}: @import {m.group(0)}"
            for m in re.finditer(r"@import\s+(?:url\()?[\"']?" + REMOTE + r"[^\"')\s]+", text)
        ]
    assert not found, "remote scripts or stylesheets in the built book:\n" + "\n".join(found)


def module_closure(entry: Path) -> list[Path]:
    """An ES module and every module it imports by relative path, transitively."""
    seen, todo = [], [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        assert path.is_file(), f"missing module {path.relative_to(HTML)}"
        seen.append(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        for rel in re.findall(r"""(?:\bfrom|\bimport\(?)\s*["'](\.{1,2}/[^"']+)["']""", text):
            todo.append((path.parent / rel).resolve())
    return seen


def test_mathjax_and_mermaid_are_served_from_the_book():
    math_pages = mermaid_pages = 0
    for docname in toc_pages():
        text = page_html(docname)
        page_dir = (HTML / docname).parent
        if re.search(r'class="math notranslate', text):
            math_pages += 1
            srcs = re.findall(r'<script[^>]+src="([^"]*tex-mml-chtml\.js)[^"]*"', text)
            assert len(srcs) == 1 and "_static/mathjax/" in srcs[0], f"{docname}: MathJax from {srcs}"
            assert (page_dir / srcs[0].split("?")[0]).resolve().is_file()
        if re.search(r'class="mermaid', text):
            mermaid_pages += 1
            urls = re.findall(r'import mermaid from "([^"]+)"', text)
            assert len(urls) == 1 and "_static/mermaid/" in urls[0], f"{docname}: mermaid from {urls}"
            modules = module_closure((page_dir / urls[0]).resolve())
            assert len(modules) > 1, "mermaid's ES module imports its chunks"
    assert math_pages, "no page has math: the check would be empty"
    fonts = list((HTML / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert fonts, "MathJax's CHTML fonts are not in _static/"
    print(f"{math_pages} page(s) with math, {mermaid_pages} with mermaid diagrams")


def text_of(html: str) -> str:
    body = html[html.find("<article") : html.find("</article>")]
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", body)))


def test_execution_report_describes_this_build():
    assert REPORT_PAGE in toc_pages(), f"{REPORT_PAGE} is not in _toc.yml"
    text = text_of(page_html(REPORT_PAGE))
    for name, version in [
        ("Python", platform.python_version()),
        ("torch", md.version("torch")),
        ("diffusion_lib", md.version("diffusion_lib")),
    ]:
        assert f" {name} {version} " in text, f"the report lacks {name} {version}: {text[:600]}"
    m = re.search(r"(\d+) notebook pages, ([\d.]+) s of execution in all \(all succeeded\)", text)
    assert m, f"no execution summary in the report: {text[:800]}"
    executed = notebook_pages()
    assert int(m.group(1)) == len(executed)
    for docname in executed:
        row = re.search(re.escape(docname) + r" (\d{4}-\d\d-\d\d \d\d:\d\d) (\w+) ([\d.]+) (\S+)", text)
        assert row, f"the execution table has no row for {docname}"
        assert row.group(4) == "✅", f"{docname} did not run: {row.group(0)}"
