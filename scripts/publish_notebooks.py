"""Publish the book's notebooks to the branch that its Colab and Binder buttons open.

Colab opens `.ipynb` files from GitHub only, and the chapters are Jupytext `.py` files, so the
book build writes every notebook page as `_build/html/_sources/<page>.ipynb` (the same
conversion as `make notebooks`; see scripts/book_publishing.py). This script puts them on the
branch named by `aigc_notebooks_branch` in `_config.yml`: a single commit holding the
repository at HEAD plus each notebook beside its source (`chapters/NN_slug.ipynb`, under
`repository.path_to_book`), so that Binder finds `requirements.txt` there too. The branch is
replaced on every publish.

    python scripts/publish_notebooks.py --layout DIR        # only copy the notebooks into DIR
    python scripts/publish_notebooks.py --push origin       # commit and force-push the branch

Options: --html (the built book, default _build/html), --repo (the repository, default this
one), --branch (default: from _config.yml). Exits 2 with one line on a usage error.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class UsageError(Exception):
    """A bad argument or a missing input: reported in one line, exit status 2."""


def book_config(root: Path) -> dict:
    import yaml

    config_path = root / "_config.yml"
    if not config_path.is_file():
        raise UsageError(f"no _config.yml in {root}")
    return yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}


def configured_branch(root: Path) -> str:
    """`sphinx.config.aigc_notebooks_branch` of the book's _config.yml."""
    config = book_config(root)
    branch = ((config.get("sphinx") or {}).get("config") or {}).get("aigc_notebooks_branch")
    if not branch:
        raise UsageError(f"{root / '_config.yml'} sets no sphinx.config.aigc_notebooks_branch")
    return branch


def book_folder(root: Path) -> str:
    """`repository.path_to_book` of _config.yml: where the book lies in the repository."""
    return str((book_config(root).get("repository") or {}).get("path_to_book") or "").strip("/")


def notebooks_in(html: Path) -> dict[str, Path]:
    """{path in the repository: built notebook} for every notebook page of the built book."""
    sources = html / "_sources"
    if not sources.is_dir():
        raise UsageError(f"no built book in {html} (no _sources/): run `make book` first")
    found = {p.relative_to(sources).as_posix(): p for p in sorted(sources.rglob("*.ipynb"))}
    if not found:
        raise UsageError(f"the built book in {html} holds no notebook (_sources/**/*.ipynb)")
    return found


def lay_out(html: Path, dest: Path, book: str = "") -> list[str]:
    """Copy every notebook of the built book into dest at its path in the repository (the
    page's path, under `book`, the book's folder); return those paths."""
    copied = []
    for page, path in notebooks_in(html).items():
        rel = f"{book}/{page}" if book else page
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(rel)
    return copied


def git(*args: str, cwd: Path) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise UsageError(f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}")
    return result.stdout.strip()


def push(repo: Path, html: Path, remote: str, branch: str, book: str = "") -> str:
    """Commit HEAD's tree plus the notebooks as one commit and force-push it to branch."""
    notebooks = notebooks_in(html)  # fail before touching git
    head = git("rev-parse", "HEAD", cwd=repo)
    with tempfile.TemporaryDirectory(prefix="notebooks-branch-") as tmp:
        work = Path(tmp) / "tree"
        git("worktree", "add", "--detach", str(work), head, cwd=repo)
        try:
            rels = lay_out(html, work, book)
            assert len(rels) == len(notebooks)
            git("add", "--force", "--", *rels, cwd=work)
            identity = [
                "-c",
                "user.name=aigc-book publisher",
                "-c",
                "user.email=publisher@users.noreply.github.com",
            ]
            has_name = subprocess.run(["git", "config", "user.name"], cwd=work, capture_output=True)
            git(
                *([] if has_name.returncode == 0 else identity),
                "commit",
                "--quiet",
                "-m",
                f"Notebooks of the book built from {head[:12]}",
                cwd=work,
            )
            commit = git("rev-parse", "HEAD", cwd=work)
            git("push", "--force", remote, f"{commit}:refs/heads/{branch}", cwd=work)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(work)], cwd=repo)
    print(f"pushed {len(notebooks)} notebook(s) to {remote} {branch} ({commit[:12]}, on {head[:12]})")
    return commit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--layout", type=Path, metavar="DIR", help="copy the notebooks into DIR")
    action.add_argument("--push", metavar="REMOTE", help="commit and force-push the branch")
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--branch", default=None)
    args = parser.parse_args(argv)
    try:
        book = book_folder(args.repo) if (args.repo / "_config.yml").is_file() else ""
        if args.layout is not None:
            for rel in lay_out(args.html, args.layout, book):
                print(args.layout / rel)
        else:
            branch = args.branch or configured_branch(args.repo)
            push(args.repo, args.html, args.push, branch, book)
    except UsageError as err:
        print(f"publish_notebooks: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
