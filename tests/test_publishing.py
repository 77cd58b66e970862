"""Publishing the book, checked without building it: the chapters' install cell, the launch
configuration, the Sphinx extension that writes the notebooks and serves MathJax and mermaid
locally (scripts/book_publishing.py), the script that publishes the notebooks branch
(scripts/publish_notebooks.py), the vendored npm packages and the release workflows.

What needs the built book is in test_built_book.py and test_browser.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import jupytext
import pytest
import yaml
from book_build import ROOT, config, load_script, notebook_pages, source_of

ENGLISH_INSTALL_COMMENT = "# Colab and other fresh environments: install the book's library if it is missing."


ext = load_script("book_publishing")
publish = load_script("publish_notebooks")


def repository_url() -> str:
    return config()["repository"]["url"]


def install_cell(docname: str) -> str:
    nb = jupytext.read(source_of(docname))
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{docname} has no code cell"
    return code[0].source


# ----------------------------------------------------------------------------- the install cell
def run_install_cell(cell: str, library_missing: bool, cwd: Path) -> dict:
    """Run a chapter's install cell in a fresh interpreter of this environment, with
    subprocess.run recorded instead of run; optionally pretend diffusion_lib is missing."""
    program = textwrap.dedent(
        f"""
        import contextlib, importlib.util, io, json, subprocess, sys
        calls = []
        def fake_run(args, **kwargs):
            calls.append({{"args": list(args), "check": kwargs.get("check")}})
            return subprocess.CompletedProcess(args, 0)
        subprocess.run = fake_run
        if {library_missing!r}:
            real_find_spec = importlib.util.find_spec
            importlib.util.find_spec = lambda name, *a: (
                None if name == "diffusion_lib" else real_find_spec(name, *a))
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(compile({cell!r}, "<install cell>", "exec"), {{"__name__": "__main__"}})
        print(json.dumps({{"calls": calls, "output": out.getvalue(), "python": sys.executable}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("docname", notebook_pages())
def test_install_cell_installs_from_the_configured_repository(docname):
    cell = install_cell(docname)
    assert cell.strip().startswith(ENGLISH_INSTALL_COMMENT), (
        f"{docname}: the first code cell must be the install cell, got:\n{cell}"
    )
    urls = re.findall(r"git\+(https://[^\"']+)", cell)
    assert urls == [repository_url()], (
        f"{docname}: the install cell must install from repository.url in _config.yml "
        f"({repository_url()}), found {urls}"
    )


@pytest.mark.parametrize("docname", notebook_pages())
def test_install_cell_does_nothing_when_the_library_is_installed(docname):
    source = source_of(docname)
    ran = run_install_cell(install_cell(docname), library_missing=False, cwd=source.parent)
    assert ran["calls"] == [], (
        f"{docname}: the install cell ran {ran['calls']} in an environment with the library"
    )
    assert ran["output"] == "", f"{docname}: the install cell printed {ran['output']!r}"


@pytest.mark.parametrize("docname", notebook_pages())
def test_install_cell_installs_the_library_when_it_is_missing(docname):
    ran = run_install_cell(install_cell(docname), library_missing=True, cwd=source_of(docname).parent)
    assert ran["calls"] == [
        {
            "args": [ran["python"], "-m", "pip", "install", "-q", f"git+{repository_url()}"],
            "check": True,
        }
    ], f"{docname}: expected one pip install from the repository, got {ran['calls']}"


# ----------------------------------------------------------------------------- configuration
def test_launch_buttons_and_repository_are_configured_once():
    cfg = config()
    owner, name = ext.github_repository(cfg["repository"]["url"])
    assert owner and name
    launch = cfg["launch_buttons"]
    assert launch["colab_url"] == "https://colab.research.google.com"
    assert launch["binderhub_url"] == "https://mybinder.org"
    assert launch.get("thebe") is False, "Thebe loads its code from a CDN; keep it off"
    sphinx = cfg["sphinx"]
    assert sphinx["local_extensions"] == {"book_publishing": "scripts"}
    assert (ROOT / "scripts" / "book_publishing.py").is_file()
    assert sphinx["config"]["aigc_notebooks_branch"] == publish.configured_branch(ROOT)
    assert sphinx["config"]["nb_ipywidgets_js"] == {}, "no widget manager from a CDN"
    # The address is written once: no other configuration file repeats it.
    for path in [ROOT / "Makefile", ROOT / ".ci" / "run", *(ROOT / ".github").rglob("*.yml")]:
        assert f"{owner}/{name}" not in path.read_text(encoding="utf-8"), (
            f"{path.relative_to(ROOT)} repeats the repository address; read it from _config.yml"
        )


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://github.com/a/b",
        "https://gitlab.com/a/b",
        "https://github.com/a",
        "https://github.com/a/b/c",
    ],
)
def test_repository_address_must_be_a_github_repository(url):
    with pytest.raises(ValueError, match=r"repository\.url in _config\.yml must be https://github.com"):
        ext.github_repository(url)


def test_repository_address_parts():
    assert ext.github_repository("https://github.com/org/repo") == ("org", "repo")
    assert ext.github_repository("https://github.com/org/repo.git/") == ("org", "repo")


def fake_app(**launch) -> SimpleNamespace:
    options = {
        "repository_url": "https://github.com/org/repo",
        "path_to_docs": "",
        "launch_buttons": {
            "notebook_interface": "jupyterlab",
            "colab_url": "https://colab.research.google.com/",
            "binderhub_url": "https://mybinder.org",
            **launch,
        },
    }
    return SimpleNamespace(config=SimpleNamespace(html_theme_options=options, aigc_notebooks_branch="nb"))


def test_launch_urls_open_the_notebook_on_the_notebooks_branch():
    urls = ext.launch_urls(fake_app(), "chapters/04_forward_process")
    assert urls == {
        "Colab": "https://colab.research.google.com/github/org/repo/blob/nb/chapters/04_forward_process.ipynb",
        "Binder": "https://mybinder.org/v2/gh/org/repo/nb?urlpath=lab/tree/chapters/04_forward_process.ipynb",
    }
    app = fake_app(binderhub_url="")
    app.config.html_theme_options["path_to_docs"] = "/book/"
    assert ext.launch_urls(app, "a/b") == {
        "Colab": "https://colab.research.google.com/github/org/repo/blob/nb/book/a/b.ipynb"
    }


@pytest.mark.parametrize(
    "branch, interface, message",
    [
        ("", "jupyterlab", "aigc_notebooks_branch must be a git branch name"),
        ("two words", "jupyterlab", "aigc_notebooks_branch must be a git branch name"),
        ("nb", "lab", "notebook_interface must be 'classic' or 'jupyterlab', got 'lab'"),
    ],
)
def test_launch_configuration_errors_are_clear(branch, interface, message):
    app = fake_app(notebook_interface=interface)
    app.config.aigc_notebooks_branch = branch
    with pytest.raises(ValueError, match=re.escape(message)):
        ext.check_launch_config(SimpleNamespace(), app.config)


def test_execution_summary():
    records = {
        "chapters/a": {"runtime": 2.5, "succeeded": True, "mtime": 100.0},
        "chapters/b": {"runtime": 1.0, "succeeded": True, "mtime": 300.0},
    }
    assert ext.summary_text(records, build_started=200.0) == (
        "2 notebook pages, 3.5 s of execution in all (all succeeded); "
        "1 ran in this build and 1 came from the execution cache."
    )
    records["chapters/b"]["succeeded"] = False
    assert "(1 failed: chapters/b)" in ext.summary_text(records, 0.0)
    assert ext.summary_text({}, 0.0) == "No page was executed in this build."


# ----------------------------------------------------------------------------- offline assets
def package_json() -> dict:
    return json.loads((ROOT / "scripts" / "vendor" / "package.json").read_text(encoding="utf-8"))


def test_vendored_packages_are_pinned_and_locked():
    deps = package_json()["dependencies"]
    assert set(deps) == {"mathjax", "mermaid"}
    lock = json.loads((ROOT / "scripts" / "vendor" / "package-lock.json").read_text(encoding="utf-8"))
    for name, version in deps.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} must be pinned exactly, got {version}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, (
            f"lock file out of date: {name}"
        )
        assert lock["packages"][""]["dependencies"][name] == version
    # MathJax 3: Sphinx's mathjax3_config and the es5/ layout; mermaid >= 10.3 (ESM builds).
    assert deps["mathjax"].startswith("3.")
    assert int(deps["mermaid"].split(".")[0]) >= 11


def test_vendored_files_are_the_ones_the_pages_load():
    targets = [dst for files in ext.VENDORED.values() for _, dst in files]
    assert ext.MATHJAX_PATH in targets and ext.MERMAID_PATH in targets
    assert ext.package_version(ROOT / "no-such-dir", "mermaid") == "?"


def test_staging_copies_the_vendored_files_without_source_maps(tmp_path):
    modules = tmp_path / "node_modules"
    for files in ext.VENDORED.values():
        for src, _ in files:
            path = modules / src
            if Path(src).suffix in (".js", ".mjs") or Path(src).name == "LICENSE":  # a file
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(src)
            else:  # a directory: one file and its source map
                path.mkdir(parents=True, exist_ok=True)
                (path / "part.js").write_text("x")
                (path / "part.js.map").write_text("{}")
    assert ext.missing_vendored(modules) == []
    staging = tmp_path / "static"
    count = ext.stage_vendored(modules, staging)
    assert (staging / ext.MATHJAX_PATH).read_text() == "mathjax/es5/tex-mml-chtml.js"
    assert (staging / "mermaid/chunks/mermaid.esm.min/part.js").is_file()
    assert not list(staging.rglob("*.map"))
    assert count == len(list(staging.rglob("*"))) - len([p for p in staging.rglob("*") if p.is_dir()])
    (modules / "mermaid/dist/mermaid.esm.min.mjs").unlink()
    assert ext.missing_vendored(modules) == ["mermaid/dist/mermaid.esm.min.mjs"]


# ----------------------------------------------------------------------------- the notebooks branch
def fake_book(tmp_path: Path) -> Path:
    html = tmp_path / "html"
    for rel in ("chapters/04_forward_process.ipynb", "book/errata.ipynb"):
        (html / "_sources" / rel).parent.mkdir(parents=True, exist_ok=True)
        (html / "_sources" / rel).write_text(json.dumps({"cells": [], "rel": rel}))
    (html / "_sources" / "chapters" / "04_forward_process.py").write_text("# %%\n")
    return html


def test_layout_puts_each_notebook_beside_its_source(tmp_path):
    html = fake_book(tmp_path)
    out = tmp_path / "tree"
    assert publish.main(["--layout", str(out), "--html", str(html)]) == 0
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert found == ["book/errata.ipynb", "chapters/04_forward_process.ipynb"]


def test_layout_under_the_book_folder(tmp_path):
    html = fake_book(tmp_path)
    rels = publish.lay_out(html, tmp_path / "tree", "docs")
    assert sorted(rels) == ["docs/book/errata.ipynb", "docs/chapters/04_forward_process.ipynb"]
    assert (tmp_path / "tree" / "docs" / "book" / "errata.ipynb").is_file()
    assert publish.book_folder(ROOT) == str(config()["repository"]["path_to_book"]).strip("/")


def test_layout_without_a_built_book_is_a_clear_error(tmp_path, capsys):
    assert publish.main(["--layout", str(tmp_path / "out"), "--html", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("publish_notebooks: no built book in") and "run `make book` first" in err
    (tmp_path / "empty" / "_sources").mkdir(parents=True)
    assert publish.main(["--layout", str(tmp_path / "out"), "--html", str(tmp_path / "empty")]) == 2
    assert "holds no notebook" in capsys.readouterr().err


def git(*args, cwd):
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_push_publishes_the_repository_plus_the_notebooks(tmp_path):
    repo, remote = tmp_path / "repo", tmp_path / "remote.git"
    (repo / "chapters").mkdir(parents=True)
    (repo / "chapters" / "04_forward_process.py").write_text("# %%\n")
    (repo / "requirements.txt").write_text("numpy\n")
    (repo / ".gitignore").write_text("*.ipynb\n")
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "one", cwd=repo)
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    html = fake_book(tmp_path)
    for _ in range(2):  # the branch is replaced on every publish
        args = ["--push", str(remote), "--repo", str(repo), "--html", str(html), "--branch", "nb"]
        assert publish.main(args) == 0
    files = git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "nb", cwd=tmp_path).split()
    assert files == [
        ".gitignore",
        "book/errata.ipynb",
        "chapters/04_forward_process.ipynb",
        "chapters/04_forward_process.py",
        "requirements.txt",
    ]
    log = git("--git-dir", str(remote), "log", "--format=%s", "nb", cwd=tmp_path).splitlines()
    assert len(log) == 2 and log[0].startswith("Notebooks of the book built from ")
    assert git("worktree", "list", cwd=repo).count("\n") == 1, "the temporary worktree is removed"


def test_push_to_a_missing_remote_is_a_clear_error(tmp_path, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a").write_text("a")
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "one", cwd=repo)
    args = ["--push", "nowhere", "--repo", str(repo), "--html", str(fake_book(tmp_path)), "--branch", "nb"]
    assert publish.main(args) == 2
    assert "publish_notebooks: git push --force nowhere" in capsys.readouterr().err


# ----------------------------------------------------------------------------- entry points
def test_make_and_ci_run_the_book_checks_after_the_build():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("vendor", "book-check"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile lacks target {target!r}"
    recipe = makefile[makefile.index("\ntest:") : makefile.index("\nlint:")]
    assert recipe.index("book-fresh") < recipe.index("book-check"), "book-check runs after the build"


def test_make_test_executes_each_chapter_once():
    """`make test` executes every chapter in the book build alone (not also under nbval), and
    that build starts from an empty execution cache and reads every page again, so nothing is
    skipped because an older build cached it."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile[makefile.index("\ntest:") : makefile.index("\nlint:")]
    assert "nbval" not in recipe, "make test runs nbval as well as the book build"
    fresh = makefile[makefile.index("\nbook-fresh:") :].split("\n\n")[0]
    assert re.search(r"rm -rf _build/\.jupyter_cache ", fresh), fresh
    assert "_build/.jupyter_cache-shift-*" in fresh, "the caches of other seed shifts too"
    assert re.search(r"jupyter-book build \. -W --keep-going --all$", fresh, re.M), fresh
    assert config()["execute"]["execute_notebooks"] == "cache"
    assert config()["execute"]["allow_errors"] is False, "a failed check must fail the build"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "chromium" in ci and "AIGC_REQUIRE_BOOK_CHECKS=1" in ci


def test_playwright_is_a_test_only_requirement():
    def names(path):
        lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
        return {re.split(r"[<>=!~ ;\[]", ln.strip(), maxsplit=1)[0].lower() for ln in lines if ln.strip()}

    assert "playwright" in names("requirements-dev.txt")
    assert "playwright" not in names("requirements.txt"), "requirements.txt is what Binder installs"


def workflow(name: str) -> dict:
    path = ROOT / ".github" / "workflows" / name
    assert path.is_file(), f"missing {path.relative_to(ROOT)}"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def steps_text(job: dict) -> str:
    return "\n".join(json.dumps(step) for step in job["steps"])


def test_ci_workflow_runs_make_test():
    ci = workflow("ci.yml")
    (job,) = ci["jobs"].values()
    text = steps_text(job)
    assert "bash .ci/run" in text
    assert "DIFFUSION_LIB_HOME" in json.dumps(ci) and ".cache/diffusion_lib" in text, "models are cached"
    # make test executes every chapter once, from an empty execution cache: keeping one is useless
    assert "_build/.jupyter_cache" not in text


def test_publish_workflow_builds_pushes_the_notebooks_and_deploys_pages():
    wf = workflow("publish.yml")
    assert wf[True]["push"]["branches"] == ["main"]  # YAML reads the key `on` as True
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["contents"] == "write"
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    text = steps_text(build)
    for needed in (
        "make book",
        "scripts/publish_notebooks.py --push origin",
        "actions/upload-pages-artifact",
        "_build/html",
        "_build/.jupyter_cache",
    ):
        assert needed in text, f"publish.yml's build job lacks {needed!r}"
    assert deploy["needs"] == "build" and "actions/deploy-pages" in steps_text(deploy)


def test_a_seed_shift_caches_outputs_apart_and_rereads_every_page(tmp_path, monkeypatch):
    app = SimpleNamespace(outdir=str(tmp_path / "_build" / "html"))
    config = SimpleNamespace(nb_execution_cache_path="")
    monkeypatch.delenv(ext.SEED_SHIFT_VARIABLE, raising=False)
    ext.cache_outputs_per_seed_shift(app, config)
    assert config.nb_execution_cache_path == "", "shift 0 keeps MyST-NB's default cache"
    env = SimpleNamespace(found_docs={"a", "b", "c"})
    assert ext.reread_all_when_the_shift_changes(app, env, set(), set(), set()) == []

    monkeypatch.setenv(ext.SEED_SHIFT_VARIABLE, "2")
    ext.cache_outputs_per_seed_shift(app, config)
    assert config.nb_execution_cache_path == str((tmp_path / "_build" / ".jupyter_cache-shift-2").resolve())
    assert ext.reread_all_when_the_shift_changes(app, env, {"c"}, set(), set()) == ["a", "b"]
    assert ext.reread_all_when_the_shift_changes(app, env, set(), set(), set()) == [], "once per change"
    monkeypatch.setenv(ext.SEED_SHIFT_VARIABLE, "0")
    assert ext.reread_all_when_the_shift_changes(app, env, set(), set(), {"b"}) == ["a", "c"]
    monkeypatch.setenv(ext.SEED_SHIFT_VARIABLE, "-1")
    with pytest.raises(ValueError, match="DIFFUSION_LIB_SEED_SHIFT must be a whole number >= 0, got '-1'"):
        ext.cache_outputs_per_seed_shift(app, config)


def test_the_extension_and_the_library_read_the_same_variable():
    from diffusion_lib.seeds import ENV_SEED_SHIFT

    assert ext.SEED_SHIFT_VARIABLE == ENV_SEED_SHIFT


def test_the_summary_reads_each_page_s_latest_execution_time(tmp_path, monkeypatch):
    import nbformat.v4 as v4
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    summary = load_script("test_summary")
    build = tmp_path / "_build"
    monkeypatch.delenv("DIFFUSION_LIB_SEED_SHIFT", raising=False)
    assert summary.execution_times(build) == {}, "no cache, no times"

    def cached(cache_dir, page, code, seconds):
        nb = v4.new_notebook(cells=[v4.new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        bundle = CacheBundleIn(nb, str(summary.ROOT / f"{page}.py"), data={"execution_seconds": seconds})
        get_cache(str(cache_dir)).cache_notebook_bundle(bundle, check_validity=False)

    cached(build / ".jupyter_cache", "chapters/01_a", "1", 12.0)
    cached(build / ".jupyter_cache", "chapters/02_b", "2", 3.0)
    cached(build / ".jupyter_cache", "chapters/01_a", "1 + 1", 40.0)  # edited, run again
    cached(build / ".jupyter_cache-shift-2", "chapters/01_a", "1", 7.0)
    assert summary.execution_times(build) == {"chapters/01_a": 40.0, "chapters/02_b": 3.0}
    monkeypatch.setenv("DIFFUSION_LIB_SEED_SHIFT", "2")
    assert summary.execution_times(build) == {"chapters/01_a": 7.0}
