"""Shared test settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny networks run fastest on one thread (and do not fight other processes for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_zoo(tmp_path, monkeypatch, request):
    """The calling module's ``TINY_ENTRIES`` registered, an empty model cache, no seed shift, and
    the list of the models any family trained: ``(cache, trained)``; the entries are
    unregistered afterwards."""
    from diffusion_lib import zoo
    from diffusion_lib.family import families
    from diffusion_lib.seeds import ENV_SEED_SHIFT

    entries = request.module.TINY_ENTRIES
    cache = tmp_path / "cache"
    monkeypatch.setenv(zoo.ENV_HOME, str(cache))
    monkeypatch.delenv(ENV_SEED_SHIFT, raising=False)
    trained = []
    for family in families().values():

        def counted(entry, *args, _train=family.train, **kwargs):
            trained.append(entry.name)
            return _train(entry, *args, **kwargs)

        monkeypatch.setattr(family, "train", counted)
    for entry in entries:
        zoo.register(entry)
    yield cache, trained
    for entry in entries:
        zoo.unregister(entry.name)
    assert not any(e.name in zoo.names() for e in entries)
