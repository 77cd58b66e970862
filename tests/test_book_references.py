"""The library's docstrings point into the book: every "Derived in chapter N, eq. (label)"
names an equation label that chapter N defines, so a renamed or removed equation fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "diffusion_lib"
CHAPTERS = ROOT / "chapters"

# "Derived in chapter 5, eq. (rev-decoder)" or "Derived in chapter 5, eqs. (a) and (b)":
# the labels follow "Derived in chapter N" within a few lines (up to a blank line).
REFERENCE = re.compile(r"[Dd]erived in chapter (\d+)((?:(?!\n\s*\n).){0,160})", re.S)
# A label in a reference: "eq. (name)", "eqs. (a), (b)" or "(a) and (b)"; a paper's equation
# number such as "eq. (13)" is not a label of ours, nor a word in parentheses elsewhere.
LABEL = re.compile(r"(?:eqs?\.\s*|,\s*|\band\s+)\(([a-z][a-z0-9-]*)\)")
# Where a chapter defines a label: a display equation closed by "$$ (label)".
DEFINED = re.compile(r"^#\s*\$\$\s*\(([^)\s]+)\)", re.M)


# A chapter still being written lives in drafts/ (drafts/README.md) until it passes; the library
# it describes may already cite it, and the labels it cites must exist there too.
DRAFTS = ROOT / "drafts"


def chapter_file(number: int) -> Path | None:
    found = sorted(CHAPTERS.glob(f"{number:02d}_*.py")) or sorted(DRAFTS.glob(f"{number:02d}_*.py"))
    return found[0] if found else None


def references() -> list[tuple[str, int, str]]:
    out = []
    for path in sorted(LIBRARY.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for match in REFERENCE.finditer(text):
            number = int(match.group(1))
            tail = match.group(2)
            # stop at the next "chapter M" in the same sentence: its labels belong to M
            tail = re.split(r"\bchapters? \d+", tail)[0]
            for label in LABEL.findall(tail):
                out.append((str(path.relative_to(ROOT)), number, label))
    return out


REFERENCES = references()


def test_the_library_cites_equations():
    # Guards the parser: if the phrasing changed, the test below would check nothing.
    assert len(REFERENCES) >= 30, REFERENCES


@pytest.mark.parametrize(
    "where, number, label", REFERENCES, ids=[f"{w}:{n}:{lab}" for w, n, lab in REFERENCES]
)
def test_a_cited_equation_exists_in_its_chapter(where, number, label):
    chapter = chapter_file(number)
    assert chapter is not None, f"{where} cites chapter {number}, which does not exist"
    defined = set(DEFINED.findall(chapter.read_text(encoding="utf-8")))
    assert label in defined, (
        f"{where} cites eq. ({label}) in chapter {number}, but {chapter.name} defines no such "
        f"label (it defines {len(defined)} labels)"
    )


# Public functions whose formula or algorithm a chapter derives: each says where.
MUST_CITE = [
    ("diffusion_lib.nets.embeddings", "timestep_embedding"),
    ("diffusion_lib.nets.unet", "ResBlock"),
    ("diffusion_lib.train", "train"),
    ("diffusion_lib.train", "ema_update"),
    ("diffusion_lib.train", "ema_decay_at"),
    ("diffusion_lib.diffusion", "GaussianDiffusion.q_sample"),
    ("diffusion_lib.diffusion", "GaussianDiffusion.training_losses"),
    ("diffusion_lib.diffusion", "GaussianDiffusion.vlb_terms"),
    ("diffusion_lib.diffusion", "GaussianDiffusion.bits_per_dim"),
    ("diffusion_lib.gan", "train_gan"),
    ("diffusion_lib.diffusion", "GaussianDiffusion.fractional_timestep"),
    ("diffusion_lib.sde", "VPSDE.discrete_betas"),
    ("diffusion_lib.sde", "ode_log_likelihood"),
    ("diffusion_lib.sde", "score_from_eps"),
    ("diffusion_lib.sde", "divergence"),
    ("diffusion_lib.samplers", "vp_denoiser"),
    ("diffusion_lib.samplers", "edm_heun"),
    ("diffusion_lib.samplers", "edm_sigmas"),
    ("diffusion_lib.flow", "training_losses"),
    ("diffusion_lib.vae", "DiagonalGaussian.kl"),
    ("diffusion_lib.vae", "vae_loss"),
    ("diffusion_lib.vae", "scale_factor"),
    ("diffusion_lib.nets.unet", "CrossAttention"),
    ("diffusion_lib.nets.unet", "pool_context"),
    ("diffusion_lib.editing", "inpaint"),
    ("diffusion_lib.editing", "repaint_path"),
    ("diffusion_lib.editing", "sdedit"),
    ("diffusion_lib.editing", "ddrm"),
    ("diffusion_lib.editing", "gaussian_eps_model"),
    ("diffusion_lib.editing", "gaussian_conditional"),
    ("diffusion_lib.editing", "wiener"),
    ("diffusion_lib.families.unclip", "embedding_scale"),
    ("diffusion_lib.families.unclip", "prior_loss"),
    ("diffusion_lib.families.unclip", "decoder_loss"),
    ("diffusion_lib.families.unclip", "slerp"),
    ("diffusion_lib.families.unclip", "text_difference"),
]


@pytest.mark.parametrize("module, name", MUST_CITE, ids=[n for _, n in MUST_CITE])
def test_a_derived_function_says_where(module, name):
    import importlib

    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    assert REFERENCE.search(obj.__doc__ or ""), (
        f"{module}.{name}'s docstring does not say 'Derived in chapter N'"
    )
