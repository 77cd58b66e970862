#!/usr/bin/env bash
# Create (or refresh) the virtual environment that builds and tests the book.
#
# Called by `make install` (and so by `make book` / `make test`); safe to run by hand:
#
#   bash scripts/install.sh
#
# Settings, all optional, from the environment (or `make VAR=value`):
#   VENV             where the environment lives                        (default .venv)
#   PYTHON           the interpreter that creates it                    (default python3)
#   TORCH_SPEC       the torch requirement installed first              (default torch==2.13.0)
#   TORCH_INDEX_URL  a package index to take torch from, e.g. a CPU-only wheel index;
#                    empty (the default) means pip's configured index
#
# torch is installed first and on its own so that the reader chooses the build (CPU or CUDA);
# if torch already imports in the environment it is kept as it is.
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}

cd "$(dirname "$0")/.."

say() { printf '[install] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV with $("$PYTHON" --version 2>&1) ($(command -v "$PYTHON"))"
    "$PYTHON" -m venv "$VENV"
fi
py="$VENV/bin/python"
"$py" -c 'import sys; assert sys.version_info >= (3, 9), "Python >= 3.9 is required"'
pip=("$py" -m pip --disable-pip-version-check)

if torch_version=$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null); then
    say "torch $torch_version is already installed; keeping it"
else
    index_args=()
    if [ -n "$TORCH_INDEX_URL" ]; then
        index_args=(--index-url "$TORCH_INDEX_URL")
    fi
    say "installing $TORCH_SPEC${TORCH_INDEX_URL:+ from $TORCH_INDEX_URL}"
    "${pip[@]}" install --progress-bar off ${index_args[@]+"${index_args[@]}"} "$TORCH_SPEC"
fi

say "installing requirements.txt and requirements-dev.txt"
"${pip[@]}" install --progress-bar off -r requirements.txt -r requirements-dev.txt

say "installing diffusion_lib (editable)"
"${pip[@]}" install --progress-bar off --no-deps -e .

"$py" - <<'EOF'
import importlib.metadata as md
import torch
import diffusion_lib  # noqa: F401
print(f"[install] ok: torch {torch.__version__} (CUDA available: {torch.cuda.is_available()}), "
      f"diffusion_lib {md.version('diffusion_lib')}, jupyter-book {md.version('jupyter-book')}")
EOF
