"""The library's layers (CONTRIBUTING.md, "Layers"): a module imports only modules of lower
layers, so dependencies point one way and there is no cycle, and no module imports another's
private names. A new import that points up or sideways fails here; move the shared piece down a
layer (public, with a docstring) instead."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "diffusion_lib"

# Every module of diffusion_lib and its layer; a module may import only lower layers.
LAYERS = {
    # 0: foundations, importing nothing of the library
    "checks": 0,
    "distributed": 0,  # several processes under torchrun (chapter 16), on torch.distributed only
    "seeds": 0,
    "files": 0,
    "schedules": 0,
    "data": 0,
    "diffusion": 0,
    "metrics": 0,
    "nets.embeddings": 0,
    "nets.classifier": 0,
    # 1: built on one foundation
    "nets.mlp": 1,
    "nets.unet": 1,
    "nets": 2,  # the package's __init__ re-exports mlp, unet and embeddings
    "train": 1,
    # 2: figures, animations and sound players, on files and audio (WAV bytes)
    "viz": 2,
    "audio": 1,  # WAV files, pitch, mel spectrograms and sound checks (chapter 15), on files
    "video": 1,  # the moving glyph's path, crops and consistency (chapter 15), on data's bounce
    "samplers": 1,
    "sde": 1,  # continuous-time processes, on diffusion (an ε-network as a score)
    "flow": 1,  # the flow-matching path and loss, on diffusion's noise drawing
    "clip": 1,  # the caption tokenizer, the InfoNCE loss, zero-shot and retrieval, on data
    "nets.clip": 1,  # CLIP's image and text encoders, on the embeddings
    "nets.prior": 1,  # unCLIP's prior network, on the embeddings
    "nets.diffwave": 1,  # DiffWave's dilated residual stack (chapter 15), on the embeddings
    "nets.video": 2,  # the space–time U-Net (chapter 15), on the U-Net's blocks
    "vae": 0,  # the KL autoencoder's posterior, loss and scale factor
    "nets.vae": 1,  # the KL autoencoder's networks, on vae
    "guidance": 1,  # classifier and classifier-free guidance, on diffusion
    # 2: editing with a trained model (inpainting, SDEdit, restoration), on the samplers
    "editing": 2,
    # 0–2: chapter 16's measurements: Tree-Ring watermarks, nearest neighbours, progressive
    # distillation (on the samplers' timestep grids)
    "watermark": 0,
    "memorisation": 0,
    "distill": 2,
    # 2: a model family on the training loop
    "gan": 2,
    # 2: the family interface and its registry, on the training loop (it finds the book's
    # families by name at run time)
    "family": 2,
    # 3: the samplers by name and their command-line options, shared by the families that
    # integrate a reverse process (on samplers and the family interface)
    "sampling": 3,
    # 3: named, cached models of every family, through the family interface
    "zoo": 3,
    # 4: the book's families (each may use the zoo, e.g. for cached outputs)
    "families": 4,
    "families.diffusion": 4,
    "families.gan": 4,
    "families.classifier": 4,
    "families.flow": 4,
    "families.clip": 4,
    "families.vae": 4,
    "families.latent_diffusion": 4,
    "families.unclip": 4,
    "families.audio": 4,
    "families.video": 4,
    "families.distill": 4,
    # 5: the book's zoo entries, one module per chapter
    "entries": 5,
    "entries.chapter03": 5,
    "entries.chapter06": 5,
    "entries.chapter08": 5,
    "entries.chapter10": 5,
    "entries.chapter11": 5,
    "entries.chapter12": 5,
    "entries.chapter13": 5,
    "entries.chapter15": 5,
    "entries.chapter16": 5,
    # 6: entry points
    "__main__": 6,
    "__init__": 6,
}
# Modules that serve every family and must not learn a family's name (CONTRIBUTING.md, "Adding
# a model family"): they reach a model only through its family object.
SHARED = ("family", "zoo", "__main__", "train", "data", "files", "seeds", "checks", "viz")
FAMILY_NAMES = ("diffusion", "gan", "classifier", "flow", "clip", "vae")
# The one import that points up, made lazily inside a function so that importing metrics does
# not import the zoo: metrics' default classifier is the zoo's "digits-classifier".
UPWARD = {("metrics", "zoo")}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def library_imports(path: Path) -> set[str]:
    """The diffusion_lib modules that ``path`` imports, at the top or inside functions."""
    name = module_name(path)
    # the package a relative import starts from
    package = [] if name == "__init__" else name.split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = node.module.split(".") if node.module else []
            elif node.module and node.module.split(".")[0] == "diffusion_lib":
                base, module = [], node.module.split(".")[1:]
            else:
                continue
            if module:  # from .nets.unet import UNet
                found.add(".".join(base + module))
            else:  # from . import zoo
                found.update(".".join(base + [alias.name]) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("diffusion_lib."):
                    found.add(alias.name.split(".", 1)[1])
    return found - {"__version__"}


def violations(name: str, imports: set[str]) -> list[str]:
    """What is wrong with module ``name`` importing ``imports`` (empty when nothing is)."""
    wrong = []
    for target in sorted(imports):
        layer = LAYERS.get(target)
        if layer is None:
            wrong.append(f"{name} imports {target}, which is not a library module")
        elif (name, target) not in UPWARD and layer >= LAYERS[name]:
            wrong.append(
                f"{name} (layer {LAYERS[name]}) imports {target} (layer {layer}): "
                "dependencies point down only (CONTRIBUTING.md, 'Layers')"
            )
    return wrong


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    names = {module_name(p) for p in MODULES}
    assert names == set(LAYERS), (
        f"modules without a layer: {sorted(names - set(LAYERS))}; "
        f"layers of modules that do not exist: {sorted(set(LAYERS) - names)}"
    )


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_a_module_imports_only_lower_layers(path):
    assert not violations(module_name(path), library_imports(path))


def test_the_parser_sees_imports():
    # If import parsing broke, every module would pass trivially.
    zoo = library_imports(PACKAGE / "zoo.py")
    assert {"train", "family", "data", "seeds", "files"} <= zoo, zoo
    assert {"zoo", "samplers", "family"} <= library_imports(PACKAGE / "families" / "diffusion.py")
    assert library_imports(PACKAGE / "metrics.py") == {"zoo"}
    assert library_imports(PACKAGE / "nets" / "unet.py") == {"nets.embeddings"}


# The media modules of chapter 15 read and write with these packages only (and the standard
# library), so that a reader can use them without the book's heavier dependencies.
THIRD_PARTY = {"audio": {"numpy", "scipy", "torch"}, "video": {"numpy", "torch"}}


@pytest.mark.parametrize("name", sorted(THIRD_PARTY))
def test_media_modules_import_only_their_packages(name):
    import sys

    stdlib = getattr(sys, "stdlib_module_names", None)  # Python 3.10+
    if stdlib is None:
        pytest.skip("sys.stdlib_module_names needs Python 3.10 or later")
    found = set()
    for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module.split(".")[0])
    outside = found - THIRD_PARTY[name] - set(stdlib) - {"diffusion_lib"}
    assert not outside, f"{name} imports {sorted(outside)}"


def test_an_upward_or_sideways_import_is_reported():
    assert violations("train", {"zoo"}) and "train (layer 1) imports zoo" in violations("train", {"zoo"})[0]
    assert violations("samplers", {"viz"}), "same layer: sideways"
    assert violations("checks", {"nowhere"}), "not a module"
    assert not violations("zoo", {"train", "family"})
    assert violations("zoo", {"families.gan"}), "the zoo reaches a family through the registry only"


def private_imports(path: Path) -> list[str]:
    """Names with a leading underscore that ``path`` imports from another library module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        library = isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").startswith("diffusion_lib")
        )
        if library:
            found += [
                f"{node.module}.{alias.name}"
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
    return found


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_no_module_imports_another_s_private_names(path):
    assert not private_imports(path), f"{module_name(path)} imports private names: {private_imports(path)}"


def test_private_imports_are_seen(tmp_path):
    fake = tmp_path / "fake.py"
    fake.write_text("from .train import _helper, public\nfrom os import _exit\n", encoding="utf-8")
    assert private_imports(fake) == ["train._helper"]


def private_attributes(path: Path) -> list[str]:
    """``module._name`` read from a library module imported as a whole (``from . import zoo``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").startswith("diffusion_lib")
        ):
            modules.update(alias.asname or alias.name for alias in node.names)
    return [
        f"{node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in modules
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_no_module_reads_another_s_private_attributes(path):
    assert not private_attributes(path), f"{module_name(path)} reads {private_attributes(path)}"


def test_private_attributes_are_seen(tmp_path):
    fake = tmp_path / "fake.py"
    fake.write_text("from . import zoo\nimport os\nzoo._paths(1)\nos._exit\nzoo.paths\n", encoding="utf-8")
    assert private_attributes(fake) == ["zoo._paths"]


def family_names_in(path: Path) -> list[str]:
    """String constants of ``path`` that are a family's name, and imports of a family module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and node.value in FAMILY_NAMES:
            found.append(repr(node.value))
        elif isinstance(node, ast.ImportFrom) and node.module and "families" in node.module.split("."):
            found.append(node.module)  # from .families.gan import …
        elif isinstance(node, ast.ImportFrom) and not node.module:
            found += [
                alias.name for alias in node.names if alias.name == "families"
            ]  # from . import families
    return sorted(found)


@pytest.mark.parametrize("name", SHARED)
def test_shared_modules_do_not_name_a_family(name):
    path = PACKAGE / f"{name}.py"
    assert not family_names_in(path), f"{name} names families: {family_names_in(path)}"


def test_family_names_are_seen(tmp_path):
    fake = tmp_path / "fake.py"
    fake.write_text('if kind == "gan":\n    from .families import gan\n', encoding="utf-8")
    assert family_names_in(fake) == ["'gan'", "families"]
    fake.write_text("from .family import families\nfrom .families.gan import GANSpec\n", encoding="utf-8")
    assert family_names_in(fake) == ["families.gan"], "the registry's families() is not a family module"
