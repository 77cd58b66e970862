"""Fast checks of the repository's structure: the book's sources, its configuration and its
set-up. They run with the unit tests (`make test`, `pytest tests`) and fail early, before the
slow notebook run and book build would fail (or, worse, silently render something wrong).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import jupytext
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.py"))
TOC_SUFFIXES = (".md", ".py", ".ipynb", ".rst")

# The first code cell of every chapter (API contract; DESIGN §2): Colab installs the library.
COLAB_INSTALL_CELL = """\
# Colab and other fresh environments: install the book's library if it is missing.
import importlib.util, subprocess, sys
if importlib.util.find_spec("diffusion_lib") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/aigc-book/aigc-principles-and-code"], check=True)"""


# ----------------------------------------------------------------------------- helpers
def load_yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def toc_files() -> list[str]:
    """Every `file:` of _toc.yml (the root first), in order, without suffix."""
    toc = load_yaml("_toc.yml")
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    return files


def toc_source(entry: str) -> Path | None:
    for suffix in TOC_SUFFIXES:
        path = ROOT / (entry + suffix)
        if path.is_file():
            return path
    return None


def same_code(source: str, reference: str) -> bool:
    """Whether two cells are the same code with the same first (comment) line; layout may
    differ, and `import a, b` counts as `import a` + `import b` (as ruff/isort split it)."""

    def normal(src: str) -> str:
        tree = ast.parse(src)
        body = []
        for node in tree.body:
            if isinstance(node, ast.Import):
                body += [ast.Import(names=[alias]) for alias in node.names]
            else:
                body.append(node)
        return ast.dump(ast.Module(body=body, type_ignores=[]))

    first = [ln.strip() for ln in source.strip().splitlines()[:1]]
    return first == reference.splitlines()[:1] and normal(source) == normal(reference)


def read_chapter(path: Path):
    return jupytext.read(path, fmt="py:percent")


def markdown_of(path: Path) -> str:
    """The MyST markdown of a page: a book page as it is, a chapter's markdown cells joined."""
    if path.suffix == ".py":
        nb = read_chapter(path)
        return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return path.read_text(encoding="utf-8")


FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def split_fences(text: str) -> tuple[str, list[str]]:
    """Return (text outside code fences, [fenced blocks with their opening lines])."""
    outside, blocks, current, fence = [], [], [], None
    for line in text.splitlines():
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence, current = m.group(1), [line]
            else:
                outside.append(line)
        else:
            current.append(line)
            if m and line.strip() == fence[0] * len(m.group(1)) and len(m.group(1)) >= len(fence):
                blocks.append("\n".join(current))
                fence = None
    return "\n".join(outside), blocks


# Directives whose body is not MyST markdown (their roles, if any, are not references).
VERBATIM_DIRECTIVES = (
    "code",
    "code-block",
    "code-cell",
    "sourcecode",
    "math",
    "mermaid",
    "raw",
    "literalinclude",
    "bibliography",
    "csv-table",
    "eval-rst",
)


def directive_name(block: str) -> str | None:
    m = re.match(r"^\s*(?:`{3,}|~{3,})\{([^}]+)\}", block)
    return m.group(1).strip() if m else None


def prose(text: str) -> str:
    """Markdown without code blocks and ``double-backtick`` code spans (which hold examples
    of syntax, not references). The bodies of directives such as admonitions and dropdowns
    stay, since MyST parses them as markdown."""
    outside, blocks = split_fences(text)
    kept = [outside]
    for block in blocks:
        name = directive_name(block)
        if name is not None and name not in VERBATIM_DIRECTIVES:
            kept.append(prose("\n".join(block.splitlines()[1:-1])))
    return re.sub(r"``.+?``", "", "\n".join(kept))


def role_targets(text: str, role: str) -> list[str]:
    """Targets of {role}`...` uses; `text <target>` gives target."""
    targets = []
    for body in re.findall(r"\{" + role + r"\}`([^`\n{}]+)`", text):
        m = re.search(r"<([^<>]+)>\s*$", body)
        targets.append((m.group(1) if m else body).strip())
    return targets


def book_pages() -> list[Path]:
    pages = [toc_source(entry) for entry in toc_files()]
    pages += [p for p in (ROOT / "book").glob("*.md")]
    pages += CHAPTERS
    return sorted({p for p in pages if p is not None})


# ----------------------------------------------------------------------------- the TOC
def test_toc_lists_every_chapter_and_only_existing_pages():
    entries = toc_files()
    missing = [e for e in entries if toc_source(e) is None]
    assert not missing, f"_toc.yml lists pages that do not exist: {missing}"
    duplicates = sorted({e for e in entries if entries.count(e) > 1})
    assert not duplicates, f"_toc.yml lists pages twice: {duplicates}"
    listed = set(entries)
    unlisted = [
        p.relative_to(ROOT).as_posix()
        for p in CHAPTERS
        if p.relative_to(ROOT).with_suffix("").as_posix() not in listed
    ]
    assert not unlisted, f"chapters missing from _toc.yml: {unlisted}"


def test_toc_orders_chapters_by_number():
    numbers = [int(Path(e).name[:2]) for e in toc_files() if e.startswith("chapters/")]
    assert numbers == sorted(numbers), f"chapters out of order in _toc.yml: {numbers}"


def test_chapters_hold_no_notebooks():
    stray = sorted(p.name for p in (ROOT / "chapters").glob("*.ipynb"))
    assert not stray, f"chapters/ holds .ipynb files (use `make notebooks`): {stray}"


# ----------------------------------------------------------------------------- chapters
def test_there_are_chapters():
    assert CHAPTERS, "chapters/ holds no chapter"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_a_py_percent_notebook(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.py", path.name), f"name is not NN_slug.py: {path.name}"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ---\n# jupyter:\n"), "missing the Jupytext YAML header"
    nb = read_chapter(path)
    jt = nb.metadata.get("jupytext", {})
    assert jt.get("text_representation", {}).get("format_name") == "percent", jt
    assert "py:percent" in str(jt.get("formats", "")), jt
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", nb.metadata
    assert re.search(r"^# %%(\s|$)", text, re.M), "no `# %%` cell marker"

    first = nb.cells[0]
    assert first.cell_type == "markdown", "the first cell must be the chapter's markdown title"
    number = int(path.name[:2])
    title = first.source.lstrip().splitlines()[0]
    assert re.match(rf"# Chapter {number}: \S", title), (
        f"the first line must be '# Chapter {number}: Title', got {title!r}"
    )

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a chapter without code"
    assert same_code(code[0].source, COLAB_INSTALL_CELL), (
        "the first code cell must be the Colab install cell (README, 'Writing a chapter'), got:\n"
        + code[0].source
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_headings_do_not_skip_levels(path):
    outside, _ = split_fences(markdown_of(path))
    levels = [len(m.group(1)) for m in re.finditer(r"^(#{1,6})\s+\S", outside, re.M)]
    assert levels and levels[0] == 1, "a chapter starts with its '# Chapter N: Title'"
    assert levels.count(1) == 1, "exactly one '#' heading per chapter; sections use '##'"
    jumps = [(a, b) for a, b in zip(levels, levels[1:]) if b > a + 1]
    assert not jumps, f"heading levels skip (MyST warns, -W fails): {jumps}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_follows_the_conventions(path):
    nb = read_chapter(path)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    md = markdown_of(path)
    assert len(re.findall(r"\bcheck(_le)?\(", code)) >= 5, "at least five check(...) calls"
    assert re.search(r"^## Summary\s*$", md, re.M), "a '## Summary' section"
    assert re.search(r"^## Exercises\s*$", md, re.M), "a '## Exercises' section"


# ----------------------------------------------------------------------------- cross-references
def bib_keys() -> set[str]:
    from pybtex.database import parse_file  # installed with sphinxcontrib-bibtex

    bib = ROOT / "book" / "references.bib"
    assert bib.is_file(), "book/references.bib is missing"
    return set(parse_file(str(bib), bib_format="bibtex").entries.keys())


def test_every_citation_key_is_in_the_bibliography():
    keys = bib_keys()
    unknown = {}
    for page in book_pages():
        cited = []
        for role in (r"cite(?::[a-z]+)?", r"footcite(?::[a-z]+)?"):
            for target in role_targets(prose(markdown_of(page)), role):
                cited += [k.strip() for k in target.split(",") if k.strip()]
        missing = sorted(set(cited) - keys)
        if missing:
            unknown[page.relative_to(ROOT).as_posix()] = missing
    assert not unknown, f"citation keys not in book/references.bib: {unknown}"


ROLES = r"eq|doc|ref|numref|term|cite(?::[a-z]+)?|footcite(?::[a-z]+)?"


def test_roles_are_well_formed():
    """A role is {name}`target` on one line. A typo such as {eq}`label} silently turns the rest
    of the paragraph into inline code, which the book build does not report."""
    bad = []
    for page in book_pages():
        text = prose(markdown_of(page))
        for m in re.finditer(r"\{(" + ROLES + r")\}(`[^`]*`?)", text):
            body = m.group(2)
            if not body.endswith("`") or "\n" in body or len(body) < 3 or re.search(r"[{}]", body):
                line = text[: m.start()].count("\n") + 1
                snippet = text[m.start() : m.start() + 40].splitlines()[0]
                bad.append(f"{page.relative_to(ROOT)} (markdown line {line}): {snippet!r}")
    assert not bad, "malformed roles:\n" + "\n".join(bad)


def equation_labels(text: str) -> list[str]:
    """Labels of `$$ ... $$ (label)` and of ```{math} blocks with `:label:`, in order."""
    labels = re.findall(r"\$\$\s*\(([^()\s]+)\)\s*$", prose(text), re.M)
    _, blocks = split_fences(text)
    for block in blocks:
        if directive_name(block) == "math":
            labels += re.findall(r"^\s*:label:\s*(\S+)\s*$", block, re.M)
    return labels


def test_equation_labels_are_unique_and_every_eq_reference_resolves():
    defined: dict[str, list[str]] = {}
    refs: dict[str, list[str]] = {}
    for page in book_pages():
        name = page.relative_to(ROOT).as_posix()
        text = markdown_of(page)
        for label in equation_labels(text):
            defined.setdefault(label, []).append(name)
        for label in role_targets(prose(text), "eq"):
            refs.setdefault(label, []).append(name)
    duplicates = {k: v for k, v in defined.items() if len(v) > 1}
    assert not duplicates, f"equation labels defined more than once: {duplicates}"
    dangling = {k: v for k, v in refs.items() if k not in defined}
    assert not dangling, f"{{eq}} references to undefined labels: {dangling}"


def test_every_doc_reference_resolves():
    dangling = []
    for page in book_pages():
        for target in role_targets(prose(markdown_of(page)), "doc"):
            base = ROOT if target.startswith("/") else page.parent
            if toc_source((base / target.lstrip("/")).resolve().as_posix()) is None:
                dangling.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not dangling, f"{{doc}} references to pages that do not exist: {dangling}"


# ----------------------------------------------------------------------------- configuration
def test_requirements_name_what_the_book_needs_and_stay_portable():
    lines = [
        ln.split("#", 1)[0].strip()
        for ln in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    ]
    lines = [ln for ln in lines if ln]
    options = [ln for ln in lines if ln.startswith("-")]
    assert not options, f"no index/find-links/option lines (keep it portable): {options}"
    reqs = {canonicalize_name(r.name): r for r in map(Requirement, lines)}
    needed = [
        "jupyter",
        "jupytext",
        "torch",
        "numpy",
        "matplotlib",
        "nbval",
        "jupyter-book",
        "sphinxcontrib-mermaid",
        "scikit-learn",
        "tqdm",
        "safetensors",
    ]
    missing = [n for n in needed if canonicalize_name(n) not in reqs]
    assert not missing, f"requirements.txt lacks {missing}"

    jb = reqs["jupyter-book"].specifier
    assert not jb.contains("2.0.0") and not jb.contains("2.1.0"), f"jupyter-book must be <2: {jb}"
    assert jb.contains("1.0.4.post1", prereleases=True), f"jupyter-book 1.x must satisfy {jb}"

    cuda_only = [
        str(r)
        for r in reqs.values()
        if r.name.lower().startswith(("nvidia-", "cupy", "pytorch-cuda", "triton"))
        or any("+" in s.version for s in r.specifier)
        or r.url is not None
    ]
    assert not cuda_only, f"CUDA-only or local-build pins in requirements.txt: {cuda_only}"


def test_book_config_executes_py_percent_chapters_and_fails_on_errors():
    config = load_yaml("_config.yml")
    sphinx = config["sphinx"]["config"]
    assert sphinx["nb_execution_raise_on_error"] is True
    assert sphinx["nb_custom_formats"][".py"] == ["jupytext.reads", {"fmt": "py:percent"}]
    execute = config["execute"]
    assert execute["execute_notebooks"] == "cache"
    assert execute["allow_errors"] is False
    assert execute["timeout"] >= 60
    assert config["only_build_toc_files"] is True
    for pattern in ("_build", "build", ".venv", "tests", "README.md"):
        assert pattern in config["exclude_patterns"], pattern
    assert "sphinxcontrib.mermaid" in config["sphinx"]["extra_extensions"]
    assert config["bibtex_bibfiles"] == ["book/references.bib"]
    assert (ROOT / "book" / "references.bib").is_file()


def test_entry_points_are_wired():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("book", "test", "notebooks", "clean", "install"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile lacks target {target!r}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make book" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in ci and re.search(r"^make test\s*$", ci, re.M)


# ----------------------------------------------------------------------------- the kernel
def test_python3_kernel_runs_this_environment(tmp_path):
    """The book build and nbval run chapters in the kernel named `python3`; it must be this
    environment's interpreter, where diffusion_lib is installed."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    out = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    try:
        reply = kc.execute_interactive(
            "import sys, diffusion_lib; print(sys.prefix)", output_hook=hook, timeout=120
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok", "".join(out)
    assert Path("".join(out).strip()).resolve() == Path(sys.prefix).resolve()


def test_chapter_code_cells_fit_the_page():
    # The book's code column holds 88 characters (chapters/ruff.toml); ruff's formatter does not
    # wrap comments or `# fmt: skip` blocks, and a wider line scrolls sideways on the page (the
    # browser test measures it after a 45-minute build; this finds it at once).
    too_wide = []
    for path in sorted((ROOT / "chapters").glob("*.py")):
        in_code = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("# %%"):
                in_code = "[markdown]" not in line
            elif in_code and len(line) > 88:
                too_wide.append(f"{path.name}:{number}: {len(line)} characters")
    assert not too_wide, too_wide
