"""Sphinx extension for publishing the book (loaded through `_config.yml`, `local_extensions`).

It does five things that Jupyter Book 1 cannot be configured to do:

1. **Notebooks for every notebook page.** Each page that is a notebook (the chapters, which are
   Jupytext py:percent files, and MyST notebooks such as the errata) is also written as
   `_sources/<page>.ipynb` in the HTML output: the same conversion as `make notebooks`
   (`jupytext --to ipynb`, no outputs). The page's download menu offers it.
2. **Launch buttons that open those notebooks.** Colab opens `.ipynb` files from GitHub only,
   so the publish workflow pushes them to a branch (`aigc_notebooks_branch`, laid out by
   `scripts/publish_notebooks.py`: the repository plus `<page>.ipynb` beside each source). The
   Colab and Binder buttons point there; the repository address is `repository.url` in
   `_config.yml`, the only place it is written.
3. **An offline book.** MathJax and mermaid are served from the book's own `_static/` when
   `make vendor` has installed them (npm packages pinned in `scripts/vendor/package-lock.json`).
   Without them the book falls back to the CDN that Sphinx and sphinxcontrib-mermaid use by
   default, and the build warns (so `jupyter-book build -W`, as in `make test`, fails).
4. **The execution report.** The directive `build-environment` renders the versions of Python,
   torch, diffusion_lib and the build tools, and `execution-summary` the total execution time
   and status of the notebook pages; the page that uses them is re-read on every build, so they
   always describe the last build. (`nb-exec-table`, from MyST-NB, gives the per-page table.)
5. **Builds under a training-seed shift.** With `DIFFUSION_LIB_SEED_SHIFT=k` (k ≠ 0) the chapters
   run with other trained models (`diffusion_lib.seeds`), so their outputs are cached apart
   (`_build/.jupyter_cache-shift-k`) and every page is read again when the shift changes:
   `DIFFUSION_LIB_SEED_SHIFT=1 make book` never shows the outputs of shift 0.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

LOGGER = logging.getLogger(__name__)

# Files taken from the npm packages (relative to node_modules) into _static/, as
# (source, destination). Directories are copied whole, without source maps.
VENDORED = {
    "mathjax": [
        ("mathjax/es5/tex-mml-chtml.js", "mathjax/tex-mml-chtml.js"),
        # loaded on demand, relative to tex-mml-chtml.js: TeX extensions (autoload), the
        # CHTML fonts, the context menu and its accessibility and speech components
        ("mathjax/es5/input", "mathjax/input"),
        ("mathjax/es5/output/chtml", "mathjax/output/chtml"),
        ("mathjax/es5/ui", "mathjax/ui"),
        ("mathjax/es5/a11y", "mathjax/a11y"),
        ("mathjax/es5/sre", "mathjax/sre"),
        ("mathjax/LICENSE", "mathjax/LICENSE"),
    ],
    "mermaid": [
        ("mermaid/dist/mermaid.esm.min.mjs", "mermaid/mermaid.esm.min.mjs"),
        ("mermaid/dist/chunks/mermaid.esm.min", "mermaid/chunks/mermaid.esm.min"),
        ("mermaid/LICENSE", "mermaid/LICENSE"),
    ],
}
MATHJAX_PATH = "mathjax/tex-mml-chtml.js"  # relative to _static/
MERMAID_PATH = "mermaid/mermaid.esm.min.mjs"

LAUNCH_GROUP = "launch-buttons"  # sphinx-book-theme's label of the launch menu


# ----------------------------------------------------------------------------- 1. notebooks
def is_notebook_page(app: Sphinx, docname: str) -> bool:
    """Whether a page is a notebook (MyST-NB records its kernelspec), as sphinx-book-theme
    decides whether to show launch buttons."""
    return "kernelspec" in app.env.metadata.get(docname, {})


def notebook_of(source: Path):
    """The page's source as an nbformat notebook, as `jupytext --to ipynb` converts it."""
    import jupytext

    return jupytext.read(source)


def write_notebook(app: Sphinx, docname: str) -> Path:
    """Write `_sources/<docname>.ipynb` into the HTML output and return its path."""
    import jupytext

    source = Path(app.env.doc2path(docname))
    target = Path(app.outdir) / "_sources" / f"{docname}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    text = jupytext.writes(notebook_of(source), fmt="ipynb")
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return target


def offer_notebook_download(app, pagename, templatename, context, doctree):
    """Before the theme builds its header buttons: offer `<page>.ipynb` for download."""
    if doctree is not None and is_notebook_page(app, pagename):
        context["ipynb_source"] = f"{pagename}.ipynb"


# ----------------------------------------------------------------------------- 2. launch links
def github_repository(url: str) -> tuple[str, str]:
    """(owner, name) of a https://github.com/OWNER/NAME repository address."""
    parts = urlsplit(url or "")
    path = [p for p in parts.path.split("/") if p]
    if parts.scheme != "https" or parts.netloc != "github.com" or len(path) != 2:
        raise ValueError(
            f"repository.url in _config.yml must be https://github.com/OWNER/NAME "
            f"(Colab opens notebooks from GitHub), got {url!r}"
        )
    return path[0], path[1].removesuffix(".git")


def notebook_path_in_repository(app: Sphinx, docname: str) -> str:
    """Where the publish workflow puts the page's notebook: beside its source."""
    options = app.config.html_theme_options
    book = str(options.get("path_to_docs", "") or "").strip("/")
    return f"{book}/{docname}.ipynb" if book else f"{docname}.ipynb"


def launch_urls(app: Sphinx, docname: str) -> dict[str, str]:
    """The Colab and Binder addresses of a notebook page, by the button's text."""
    options = app.config.html_theme_options
    launch = options.get("launch_buttons", {}) or {}
    owner, name = github_repository(options.get("repository_url", ""))
    branch = app.config.aigc_notebooks_branch
    path = notebook_path_in_repository(app, docname)
    urls = {}
    colab = str(launch.get("colab_url", "") or "").rstrip("/")
    if colab:
        urls["Colab"] = f"{colab}/github/{owner}/{name}/blob/{branch}/{path}"
    binder = str(launch.get("binderhub_url", "") or "").rstrip("/")
    if binder:
        ui = {"classic": "tree", "jupyterlab": "lab/tree"}[launch.get("notebook_interface", "classic")]
        urls["Binder"] = f"{binder}/v2/gh/{owner}/{name}/{branch}?urlpath={ui}/{path}"
    return urls


def point_launch_buttons_at_notebooks(app, pagename, templatename, context, doctree):
    """After the theme: the launch buttons open the page's notebook on the notebooks branch,
    and `_sources/<page>.ipynb` (offered for download) is written."""
    if doctree is None or not is_notebook_page(app, pagename):
        return
    write_notebook(app, pagename)
    urls = launch_urls(app, pagename)
    for group in context.get("header_buttons", []):
        if group.get("label") != LAUNCH_GROUP:
            continue
        for button in group.get("buttons", []):
            if button.get("text") in urls:
                button["url"] = urls[button["text"]]


def check_launch_config(app: Sphinx, config) -> None:
    app.aigc_build_started = time.time()
    branch = config.aigc_notebooks_branch
    if not isinstance(branch, str) or not branch.strip() or any(c in branch for c in " ~^:?*[\\"):
        raise ValueError(f"aigc_notebooks_branch must be a git branch name, got {branch!r}")
    launch = (config.html_theme_options or {}).get("launch_buttons", {}) or {}
    if launch.get("colab_url") or launch.get("binderhub_url"):
        github_repository(config.html_theme_options.get("repository_url", ""))
    interface = launch.get("notebook_interface", "classic")
    if interface not in ("classic", "jupyterlab"):
        raise ValueError(
            f"launch_buttons.notebook_interface must be 'classic' or 'jupyterlab', got {interface!r}"
        )


# ----------------------------------------------------------------------------- 3. offline assets
def vendor_dir(app: Sphinx) -> Path:
    return (Path(app.confdir) / app.config.aigc_vendor_dir).resolve()


def missing_vendored(node_modules: Path) -> list[str]:
    """The vendored sources that are not there (empty when `make vendor` has run)."""
    return [src for files in VENDORED.values() for src, _ in files if not (node_modules / src).exists()]


def copy_if_changed(src: Path, dst: Path) -> None:
    if (
        dst.exists()
        and dst.stat().st_size == src.stat().st_size
        and dst.stat().st_mtime >= src.stat().st_mtime
    ):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def stage_vendored(node_modules: Path, staging: Path) -> int:
    """Copy the files of VENDORED from node_modules into staging; return the number of files."""
    count = 0
    for files in VENDORED.values():
        for src, dst in files:
            source, target = node_modules / src, staging / dst
            if source.is_dir():
                for path in sorted(source.rglob("*")):
                    if path.is_file() and not path.name.endswith(".map"):
                        copy_if_changed(path, target / path.relative_to(source))
                        count += 1
            else:
                copy_if_changed(source, target)
                count += 1
    return count


def package_version(node_modules: Path, package: str) -> str:
    import json

    meta = node_modules / package / "package.json"
    return json.loads(meta.read_text(encoding="utf-8"))["version"] if meta.exists() else "?"


def serve_vendored_assets(app: Sphinx, config) -> None:
    """Serve MathJax and mermaid from _static/ when they are vendored; otherwise warn.

    This runs when the configuration is read, so that the HTML builder sees the changed
    settings (and rewrites every page when they change, e.g. after `make vendor`)."""
    node_modules = vendor_dir(app)
    missing = missing_vendored(node_modules)
    if missing:
        LOGGER.warning(
            "MathJax and mermaid are not vendored (%s is missing in %s): the book loads them "
            "from a CDN and shows equations and diagrams only when online. Run `make vendor` "
            "(it needs npm) for a book that renders offline.",
            missing[0],
            node_modules,
            type="aigc",
            subtype="offline",
        )
        return
    staging = Path(app.outdir).parent / "offline-assets"
    count = stage_vendored(node_modules, staging)
    config.html_static_path = [*config.html_static_path, str(staging)]
    config.mathjax_path = MATHJAX_PATH
    config.mermaid_use_local = MERMAID_PATH
    LOGGER.info(
        "offline assets: MathJax %s and mermaid %s served from _static/ (%d files)",
        package_version(node_modules, "mathjax"),
        package_version(node_modules, "mermaid"),
        count,
    )


def drop_thebe_when_off(app, pagename, templatename, context, doctree):
    """With Thebe off (launch_buttons.thebe: false), leave out sphinx-thebe's scripts: they
    only serve Thebe, which would load from a CDN, and Jupyter Book adds their inline
    `const THEBE_JS_URL = ...` twice, which throws "Identifier 'THEBE_JS_URL' has already been
    declared" on every page."""
    launch = (app.config.html_theme_options or {}).get("launch_buttons", {}) or {}
    if launch.get("thebe"):
        return
    context["script_files"] = [
        js
        for js in context.get("script_files", [])
        if "THEBE_JS_URL" not in str(getattr(js, "attributes", {}).get("body", ""))
        and not str(getattr(js, "filename", js) or "").endswith("sphinx-thebe.js")
    ]


# ----------------------------------------------------------------------------- 4. the report
class build_info(nodes.General, nodes.Element):
    """Placeholder replaced at write time, once every page has been executed."""


def versions() -> list[tuple[str, str]]:
    def version(dist: str) -> str:
        try:
            return _md.version(dist)
        except _md.PackageNotFoundError:
            return "not installed"

    return [
        ("Python", platform.python_version()),
        ("torch", version("torch")),
        ("diffusion_lib", version("diffusion_lib")),
        ("jupyter-book", version("jupyter-book")),
        ("MyST-NB", version("myst-nb")),
        ("Sphinx", version("sphinx")),
    ]


def git_commit(root: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + (" (with uncommitted changes)" if dirty else "")


def table(rows: list[tuple[str, str]]) -> nodes.table:
    """A two-column table without a header."""
    tbl = nodes.table(classes=["colwidths-auto"])
    group = nodes.tgroup(cols=2)
    tbl += group
    group += [nodes.colspec(colwidth=30), nodes.colspec(colwidth=70)]
    body = nodes.tbody()
    for cells in rows:
        row = nodes.row()
        row += [nodes.entry("", nodes.paragraph(text=cell)) for cell in cells]
        body += row
    group += body
    return tbl


class BuildInfoDirective(SphinxDirective):
    """`build-environment` (what built the book) or `execution-summary` (totals)."""

    def run(self):
        self.env.aigc_report_docs = getattr(self.env, "aigc_report_docs", set()) | {self.env.docname}
        return [build_info(kind=self.name)]


def execution_records(env) -> dict[str, dict]:
    """{docname: MyST-NB's execution record} for every executed page of this build."""
    from myst_nb.sphinx_ import NbMetadataCollector

    data = NbMetadataCollector.get_doc_data(env)
    return {doc: d["exec_data"] for doc, d in sorted(data.items()) if d.get("exec_data")}


def summary_text(records: dict[str, dict], build_started: float) -> str:
    """One sentence: how many pages ran, for how long in all, whether all succeeded."""
    if not records:
        return "No page was executed in this build."
    total = sum(r.get("runtime") or 0.0 for r in records.values())
    failed = sorted(doc for doc, r in records.items() if not r.get("succeeded"))
    fresh = sum(1 for r in records.values() if (r.get("mtime") or 0.0) >= build_started)
    status = "all succeeded" if not failed else f"{len(failed)} failed: {', '.join(failed)}"
    return (
        f"{len(records)} notebook pages, {total:.1f} s of execution in all ({status}); "
        f"{fresh} ran in this build and {len(records) - fresh} came from the execution cache."
    )


class BuildInfoTransform(SphinxPostTransform):
    default_priority = 8  # with MyST-NB's execution table, before references are resolved

    def run(self, **kwargs) -> None:
        for node in list(self.document.findall(build_info)):
            if node["kind"] == "execution-summary":
                started = getattr(self.app, "aigc_build_started", 0.0)
                text = summary_text(execution_records(self.env), started)
                node.replace_self(nodes.paragraph(text=text))
                continue
            root = Path(self.app.confdir)
            rows = versions() + [
                ("platform", f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores"),
                ("commit", git_commit(root)),
                ("built", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
            ]
            node.replace_self(table(rows))


def reread_report(app, env, added, changed, removed):
    """The report describes the last build, so its page is read again on every build."""
    return sorted(getattr(env, "aigc_report_docs", set()) - set(removed))


def purge_report(app, env, docname):
    getattr(env, "aigc_report_docs", set()).discard(docname)


def merge_report(app, env, docnames, other):
    """Parallel reads: take the report pages that another process read."""
    env.aigc_report_docs = getattr(env, "aigc_report_docs", set()) | (
        getattr(other, "aigc_report_docs", set()) & set(docnames)
    )


# ----------------------------------------------------------------------------- seed shift
SEED_SHIFT_VARIABLE = "DIFFUSION_LIB_SEED_SHIFT"  # as diffusion_lib.seeds.ENV_SEED_SHIFT


def _seed_shift() -> int:
    raw = os.environ.get(SEED_SHIFT_VARIABLE, "").strip() or "0"
    if not raw.isdigit():
        raise ValueError(f"{SEED_SHIFT_VARIABLE} must be a whole number >= 0, got {raw!r}")
    return int(raw)


def cache_outputs_per_seed_shift(app, config):
    """Under a seed shift k ≠ 0, keep the executed outputs in `.jupyter_cache-shift-k`."""
    shift = _seed_shift()
    if shift:
        path = Path(app.outdir).parent / f".jupyter_cache-shift-{shift}"
        config.nb_execution_cache_path = str(path.resolve())
        LOGGER.info("seed shift %d: executed outputs cached in %s", shift, path)


def reread_all_when_the_shift_changes(app, env, added, changed, removed):
    """Pages executed under another seed shift are read (and so executed) again."""
    shift = _seed_shift()
    if getattr(env, "aigc_seed_shift", 0) == shift:
        return []
    env.aigc_seed_shift = shift
    return sorted(set(env.found_docs) - set(removed) - set(added) - set(changed))


# ----------------------------------------------------------------------------- setup
def setup(app: Sphinx):
    app.add_config_value("aigc_notebooks_branch", "notebooks", "html", [str])
    app.add_config_value("aigc_vendor_dir", "scripts/vendor/node_modules", "html", [str])
    app.connect("config-inited", check_launch_config)
    app.connect("config-inited", serve_vendored_assets)
    app.connect("config-inited", cache_outputs_per_seed_shift)
    app.connect("env-get-outdated", reread_all_when_the_shift_changes)
    app.connect("html-page-context", offer_notebook_download, priority=500)
    app.connect("html-page-context", point_launch_buttons_at_notebooks, priority=502)
    app.connect("html-page-context", drop_thebe_when_off, priority=900)

    app.add_node(build_info)
    app.add_directive("build-environment", BuildInfoDirective)
    app.add_directive("execution-summary", BuildInfoDirective)
    app.add_post_transform(BuildInfoTransform)
    app.connect("env-get-outdated", reread_report)
    app.connect("env-purge-doc", purge_report)
    app.connect("env-merge-info", merge_report)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
