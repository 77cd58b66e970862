"""CLIP (chapter 10): the caption tokenizer, the symmetric InfoNCE loss against a hand computation,
similarity, zero-shot and recall, the two encoders and the model, and the family, trained through
the zoo on a tiny entry."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from diffusion_lib import data, zoo
from diffusion_lib.__main__ import main
from diffusion_lib.clip import Tokenizer, info_nce, recall_at_k, similarity, zero_shot
from diffusion_lib.families.clip import ClipFamily, CLIPSpec, clip_loss, scene_caption_data
from diffusion_lib.family import families, get_family
from diffusion_lib.nets.clip import CLIP, ImageEncoder, TextEncoder
from diffusion_lib.train import TrainConfig

ALL_CAPTIONS = data.scene_captions(1)[0] + data.scene_captions(2)[0]
TOKENIZER = Tokenizer.for_scenes()
# A CLIP small enough to build and run in milliseconds.
TINY_IMAGE = {"width": 4, "feature_dim": 16}
TINY_TEXT = {"width": 16, "layers": 1, "heads": 2}


def tiny_clip(**kwargs) -> CLIP:
    torch.manual_seed(0)
    text = {**TINY_TEXT, "vocab_size": TOKENIZER.vocab_size, "context_length": TOKENIZER.context_length}
    return CLIP(TINY_IMAGE, text, embed_dim=8, tokenizer=TOKENIZER, **kwargs)


# ---------------------------------------------------------------- the tokenizer
def test_tokenizer_round_trips_every_caption_of_the_grammar():
    assert len(ALL_CAPTIONS) == 480 + 5400
    tokens = TOKENIZER.encode(ALL_CAPTIONS)
    assert tokens.dtype == torch.int64 and tokens.shape == (5880, TOKENIZER.context_length)
    assert TOKENIZER.decode(tokens) == ALL_CAPTIONS
    # <bos> first, <eos> right after the last word, <pad> (0) after it.
    lengths = torch.tensor([len(c.split()) for c in ALL_CAPTIONS])
    assert (tokens[:, 0] == TOKENIZER.bos_id).all()
    assert (tokens[torch.arange(len(tokens)), lengths + 1] == TOKENIZER.eos_id).all()
    after = torch.arange(TOKENIZER.context_length)[None] > (lengths + 1)[:, None]
    assert (tokens[after] == 0).all() and (tokens[~after] != 0).all()


def test_scene_tokenizer_has_the_grammar_words_and_room_for_the_longest_caption():
    assert TOKENIZER.vocabulary[:3] == ("<pad>", "<bos>", "<eos>") and TOKENIZER.pad_id == 0
    assert TOKENIZER.words == data.SCENE_WORDS and TOKENIZER.vocab_size == len(data.SCENE_WORDS) + 3
    # "a red 3 left of a blue 7": 8 words, plus <bos> and <eos>.
    assert TOKENIZER.context_length == max(len(c.split()) for c in ALL_CAPTIONS) + 2 == 10
    ids = TOKENIZER.encode(["a red 3 left of a blue 7"])[0].tolist()
    assert ids == [1, *(3 + data.SCENE_WORDS.index(w) for w in "a red 3 left of a blue 7".split()), 2]
    assert TOKENIZER.decode(torch.tensor(ids)) == ["a red 3 left of a blue 7"]


def test_tokenizer_refuses_what_it_cannot_encode():
    with pytest.raises(
        ValueError,
        match=r"unknown word 'purple' in caption 'a purple 3 in the top left'; the vocabulary is 0, 1",
    ):
        TOKENIZER.encode(["a small red 3 in the top left", "a purple 3 in the top left"])
    with pytest.raises(ValueError, match=r"unknown word '<eos>'"):
        TOKENIZER.encode(["a red <eos>"])
    with pytest.raises(ValueError, match=r"has 9 words; at most 8 fit the context of 10 tokens"):
        TOKENIZER.encode(["a red 3 left of a blue 7 a"])
    with pytest.raises(ValueError, match="captions must be a list of str, got a single str 'a red 3'"):
        TOKENIZER.encode("a red 3")
    with pytest.raises(ValueError, match="captions must be a list of str, got list"):
        TOKENIZER.encode(["a red 3", 7])
    with pytest.raises(ValueError, match="captions must be a non-empty list of str, got an empty list"):
        TOKENIZER.encode([])
    with pytest.raises(ValueError, match=r"tokens must be ids in \[0, 30\), got 30"):
        TOKENIZER.decode(torch.tensor([[1, 30, 2]]))
    with pytest.raises(ValueError, match="tokens must be an integer tensor"):
        TOKENIZER.decode(torch.zeros(2, 3))


def test_tokenizer_refuses_a_bad_vocabulary():
    with pytest.raises(ValueError, match="words must be distinct, got 'a' more than once"):
        Tokenizer(["a", "b", "a"], 5)
    with pytest.raises(ValueError, match="words must not contain the special token '<pad>'"):
        Tokenizer(["a", "<pad>"], 5)
    with pytest.raises(ValueError, match="words must be non-empty str without spaces, got 'top left'"):
        Tokenizer(["top left"], 5)
    with pytest.raises(ValueError, match="words must be a sequence of str, got str"):
        Tokenizer("abc", 5)
    with pytest.raises(ValueError, match="context_length must be an int >= 3, got 2"):
        Tokenizer(["a"], 2)
    small = Tokenizer(["b", "a"], 4)  # ids follow the given order, after the special tokens
    assert small.encode(["a", "b a"]).tolist() == [[1, 4, 2, 0], [1, 3, 4, 2]]


# ---------------------------------------------------------------- InfoNCE, similarity, recall
def unit_rows(n: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(
        torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=1
    )


def test_info_nce_matches_a_hand_computation():
    image, text, scale = unit_rows(5, 3, 0), unit_rows(5, 3, 1), 7.5
    n = 5
    logit = [
        [scale * sum(image[i, k].item() * text[j, k].item() for k in range(3)) for j in range(n)]
        for i in range(n)
    ]
    rows = [-(logit[i][i] - math.log(sum(math.exp(logit[i][j]) for j in range(n)))) for i in range(n)]
    cols = [-(logit[j][j] - math.log(sum(math.exp(logit[i][j]) for i in range(n)))) for j in range(n)]
    out = info_nce(image, text, scale)
    assert out.image_to_text.item() == pytest.approx(sum(rows) / n, rel=1e-12)
    assert out.text_to_image.item() == pytest.approx(sum(cols) / n, rel=1e-12)
    assert out.loss.item() == pytest.approx((sum(rows) + sum(cols)) / (2 * n), rel=1e-12)
    assert torch.allclose(out.logits, torch.tensor(logit, dtype=torch.float64))
    # The two directions differ for asymmetric logits: the column term is not the row term again.
    assert abs(out.image_to_text.item() - out.text_to_image.item()) > 1e-3


def test_info_nce_is_log_n_at_equal_logits_and_tends_to_zero_when_separated():
    same = F.normalize(torch.ones(6, 4), dim=1)
    assert info_nce(same, same, 30.0).loss.item() == pytest.approx(math.log(6), rel=1e-6)
    eye = torch.eye(6, 8)  # orthonormal pairs: each positive 1, each negative 0
    # Each row's loss is log(1 + 5 e^{-s}) ≈ 5 e^{-s}: about 2e-43 at s = 100.
    assert 0 <= info_nce(eye, eye, 100.0).loss.item() <= 5 * math.exp(-100) * 1.01
    assert info_nce(eye, eye, 1.0).loss.item() > info_nce(eye, eye, 10.0).loss.item() > 0
    for seed in range(5):
        assert info_nce(unit_rows(8, 4, seed), unit_rows(8, 4, seed + 10), 50.0).loss.item() >= 0


def test_info_nce_learns_its_scale_and_refuses_bad_input():
    scale = torch.tensor(3.0, requires_grad=True)
    info_nce(unit_rows(4, 3, 0).float(), unit_rows(4, 3, 1).float(), scale).loss.backward()
    assert scale.grad is not None and scale.grad.item() != 0
    a, b = torch.randn(4, 3), torch.randn(5, 3)
    with pytest.raises(
        ValueError, match=r"must have the same shape \(N, D\), N >= 1, got \(4, 3\) and \(5, 3\)"
    ):
        info_nce(a, b, 1.0)
    with pytest.raises(ValueError, match=r"must share their dimension D, got \(4, 3\) and \(4, 2\)"):
        info_nce(a, torch.randn(4, 2), 1.0)
    with pytest.raises(ValueError, match="image_features must be a float tensor"):
        info_nce(torch.ones(4, 3, dtype=torch.int64), a, 1.0)
    for bad in (0.0, -1.0, float("nan"), torch.ones(2)):
        with pytest.raises(ValueError, match="logit_scale must be a positive finite scalar"):
            info_nce(a, a, bad)


def test_similarity_is_the_cosine_of_every_pair():
    a, b = torch.randn(3, 5, generator=torch.Generator().manual_seed(0)), torch.randn(4, 5)
    sim = similarity(a, b)
    assert sim.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert sim[i, j].item() == pytest.approx(F.cosine_similarity(a[i], b[j], dim=0).item(), abs=1e-6)
    with pytest.raises(ValueError, match="text_features must be a float tensor"):
        similarity(a, torch.randn(5))


def test_recall_at_k_counts_the_rank_of_the_diagonal():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.1, 0.7, 0.3], [0.0, 0.0, 0.0]])[:3]
    # Row 0: its match first; row 1: second (0.8 beats it); row 2: second (0.7 beats it).
    assert recall_at_k(sim, 1) == pytest.approx(1 / 3)
    assert recall_at_k(sim, 2) == 1.0
    # Text → image: column 0 first, column 1 second (0.7 in row 2), column 2 first.
    assert recall_at_k(sim.T, 1) == pytest.approx(2 / 3)
    assert recall_at_k(torch.zeros(4, 4), 1) == 0.0 and recall_at_k(torch.zeros(4, 4), 4) == 1.0  # ties lose
    assert recall_at_k(torch.eye(3, 5), 1) == 1.0  # extra candidate columns are allowed
    with pytest.raises(ValueError, match=r"M >= N >= 1 \(row i's match is column i\), got \(3, 2\)"):
        recall_at_k(torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 3\], got 4"):
        recall_at_k(sim, 4)
    with pytest.raises(ValueError, match="similarity must not contain NaN"):
        recall_at_k(torch.full((2, 2), float("nan")))
    with pytest.raises(ValueError, match="similarity must be a float tensor"):
        recall_at_k(torch.zeros(3))


class OneHot:
    """A stand-in model: image i's embedding is one-hot at its top-left pixel's value, a
    caption's at its number of words."""

    def encode_image(self, images):
        return F.one_hot(images[:, 0, 0, 0].long(), 10).float()

    def encode_text(self, captions):
        return F.one_hot(torch.tensor([len(c.split()) for c in captions]), 10).float()


def test_zero_shot_picks_the_most_similar_caption_in_any_batching():
    images = torch.zeros(5, 3, 32, 32)
    images[:, 0, 0, 0] = torch.tensor([3.0, 1.0, 2.0, 3.0, 1.0])
    captions = ["a", "a b c", "a b"]
    for batch_size in (1, 2, 500):
        assert zero_shot(OneHot(), images, captions, batch_size=batch_size).tolist() == [1, 0, 2, 1, 0]
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        zero_shot(OneHot(), images, captions, batch_size=0)
    with pytest.raises(ValueError, match="captions must be a list of str, got a single str"):
        zero_shot(OneHot(), images, "a b")
    with pytest.raises(
        ValueError, match=r"images must be a tensor \(N, 3, H, W\) with N >= 1, got \(3, 32, 32\)"
    ):
        zero_shot(OneHot(), images[0], captions)


# ---------------------------------------------------------------- the encoders and the model
def test_image_encoder_shapes_and_bad_images():
    encoder = ImageEncoder(width=4, feature_dim=12, embed_dim=6)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    assert encoder.features(x).shape == (3, 12) and encoder(x).shape == (3, 6)
    with pytest.raises(
        ValueError, match=r"images must be a tensor of shape \(N, 3, 32, 32\), got \(3, 1, 32, 32\)"
    ):
        encoder(torch.zeros(3, 1, 32, 32))
    with pytest.raises(ValueError, match="images must be a float tensor in"):
        encoder(torch.zeros(3, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="width must be an int >= 1, got 0"):
        ImageEncoder(width=0)


def test_text_encoder_reads_word_order_and_ignores_padding():
    torch.manual_seed(0)
    encoder = TextEncoder(
        TOKENIZER.vocab_size, TOKENIZER.context_length, width=16, layers=1, heads=2, embed_dim=8
    )
    encoder.eval()
    bound = TOKENIZER.encode(["a red 3 left of a blue 7", "a blue 3 left of a red 7"])
    with torch.no_grad():
        out = encoder(bound)
        assert out.shape == (2, 8)
        assert (out[0] - out[1]).norm() > 1e-2 * out[0].norm()  # the same words, bound differently
        # Padding is masked out of attention: changing <pad>'s embedding changes nothing.
        before = encoder(TOKENIZER.encode(["a small red 3 in the top left"]))
        encoder.token_embedding.weight[0] += 5.0
        after = encoder(TOKENIZER.encode(["a small red 3 in the top left"]))
    assert torch.allclose(before, after, atol=1e-5)


def test_text_encoder_refuses_bad_tokens_and_arguments():
    encoder = TextEncoder(30, 10, width=16, layers=1, heads=2, embed_dim=8)
    with pytest.raises(
        ValueError, match=r"tokens must be an int64 tensor \(N, 10\), got \(\(2, 10\), torch.float32\)"
    ):
        encoder(torch.zeros(2, 10))
    with pytest.raises(ValueError, match=r"tokens must have shape \(N, 10\) with N >= 1, got \(2, 9\)"):
        encoder(torch.ones(2, 9, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"tokens must be ids in \[0, 30\)"):
        encoder(torch.full((2, 10), 30))
    with pytest.raises(ValueError, match="at least one non-pad token per row"):
        encoder(torch.zeros(2, 10, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"width must be a multiple of heads \(3\), got 16"):
        TextEncoder(30, 10, width=16, heads=3)
    with pytest.raises(ValueError, match="vocab_size must be an int >= 3, got 2"):
        TextEncoder(2, 10)


def test_clip_embeddings_are_unit_vectors_and_the_scale_is_clamped():
    model = tiny_clip()
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    image, text = model(images, TOKENIZER.encode(ALL_CAPTIONS[:4]))
    assert image.shape == text.shape == (4, 8)
    assert torch.allclose(image.norm(dim=1), torch.ones(4))
    assert torch.allclose(text.norm(dim=1), torch.ones(4))
    assert torch.allclose(model.encode_text(ALL_CAPTIONS[:4]), text)
    assert model.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-6)
    with torch.no_grad():
        model.log_logit_scale.fill_(math.log(1000.0))
    assert model.logit_scale.item() == pytest.approx(100.0)  # CLIP's cap
    clip_loss(model, [images, TOKENIZER.encode(ALL_CAPTIONS[:4])], None).backward()
    assert model.log_logit_scale.grad.item() == 0.0  # above the cap the scale is constant
    assert tiny_clip(max_logit_scale=20.0, init_temperature=0.1).logit_scale.item() == pytest.approx(10.0)


def test_clip_refuses_bad_input():
    model = tiny_clip()
    with pytest.raises(
        ValueError, match=r"images must be a tensor of shape \(N, 3, 32, 32\), got \(2, 3, 16, 16\)"
    ):
        model.encode_image(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="images and tokens must hold as many rows, got 2 and 3"):
        model(torch.zeros(2, 3, 32, 32), TOKENIZER.encode(ALL_CAPTIONS[:3]))
    with pytest.raises(ValueError, match="unknown word 'purple'"):
        model.encode_text(["a purple 3"])
    model.tokenizer = None
    with pytest.raises(ValueError, match="encode_text needs a tokenizer"):
        model.encode_text(["a red 3"])
    text = {**TINY_TEXT, "vocab_size": 30, "context_length": 10}
    with pytest.raises(ValueError, match=r"init_temperature must be a number in \(0, 1\], got 0"):
        CLIP(TINY_IMAGE, text, init_temperature=0)
    with pytest.raises(
        ValueError, match=r"max_logit_scale must be a finite number >= 1 / init_temperature \(10\)"
    ):
        CLIP(TINY_IMAGE, text, init_temperature=0.1, max_logit_scale=5.0)
    with pytest.raises(
        ValueError, match="image must be a dict of the encoder's keyword arguments without embed_dim"
    ):
        CLIP({**TINY_IMAGE, "embed_dim": 3}, text)
    for bad in ("words", 42):
        with pytest.raises(ValueError, match="tokenizer must have an encode"):
            CLIP(TINY_IMAGE, text, tokenizer=bad)


# ---------------------------------------------------------------- the family and the zoo
def test_the_family_is_registered_and_refuses_bad_specs():
    family = get_family("clip")
    assert "clip" in families() and isinstance(family, ClipFamily) and not family.samplable
    family.check_spec(CLIPSpec())
    with pytest.raises(ValueError, match="spec must be a CLIPSpec for family 'clip', got dict"):
        family.check_spec({})
    with pytest.raises(
        ValueError, match="text must not set context_length, vocab_size: the family takes them"
    ):
        family.check_spec(CLIPSpec(text={**TINY_TEXT, "vocab_size": 30, "context_length": 10}))
    with pytest.raises(ValueError, match="image or text has a key the encoder does not take"):
        family.check_spec(CLIPSpec(image={"depth": 3}))
    with pytest.raises(ValueError, match=r"width must be a multiple of heads \(3\)"):
        family.check_spec(CLIPSpec(text={"width": 16, "heads": 3}))
    with pytest.raises(ValueError, match="image must be a dict of the encoder's keyword arguments"):
        family.check_spec(CLIPSpec(image=[4]))
    with pytest.raises(ValueError, match=r"text must not set"):
        zoo.register(replace(TINY_ENTRY, spec=CLIPSpec(text={"pad_id": 0})))


def test_scene_caption_data_pairs_scenes_with_their_tokens():
    images, tokens = data.training_tensors("scene-captions", n1=3, n2=2, seed=4)
    one, two = data.scenes(3, seed=4, objects=1), data.scenes(2, seed=4, objects=2)
    assert images.shape == (5, 3, 32, 32) and torch.equal(images, torch.cat([one.images, two.images]))
    assert TOKENIZER.decode(tokens) == one.captions + two.captions
    assert scene_caption_data(n1=0, n2=2, seed=4)[1].shape == (2, 10)
    with pytest.raises(ValueError, match="n1 must be an int >= 0, got -1"):
        scene_caption_data(n1=-1)
    with pytest.raises(ValueError, match="n1 \\+ n2 must be >= 1, got n1=0, n2=0"):
        scene_caption_data(n1=0, n2=0)


def test_the_zoo_entry_is_chapter_10s():
    entry = zoo.entry("scenes-clip")
    assert (entry.family, entry.chapter, entry.sample_shape) == ("clip", 10, (3, 32, 32))
    assert entry.train_threads == 2
    assert entry.data.name == "scene-captions" and isinstance(entry.spec, CLIPSpec)


TINY_ENTRY = zoo.ZooEntry(
    name="test-clip-tiny",
    description="a tiny CLIP, for tests",
    family="clip",
    spec=CLIPSpec(image=TINY_IMAGE, text=TINY_TEXT, embed_dim=8),
    data=zoo.DataSpec.dataset("scene-captions", n1=48, n2=48, seed=0),
    sample_shape=(3, 32, 32),
    train=TrainConfig(steps=4, batch_size=16, lr=1e-3, warmup_steps=1, ema_decay=0.5, checkpoint_every=2),
    train_threads=1,
    chapter=10,
)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """The tiny entry registered, a cache in tmp_path; the trainings counted."""
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path / "cache"))
    family = get_family("clip")
    trained = []

    def counted(entry, *args, _train=family.train, **kwargs):
        trained.append(entry.name)
        return _train(entry, *args, **kwargs)

    monkeypatch.setattr(family, "train", counted)
    zoo.register(TINY_ENTRY)
    yield trained
    zoo.unregister(TINY_ENTRY.name)


def test_a_tiny_clip_trains_through_the_zoo_and_embeds_text_once_loaded(tiny, tmp_path, capsys):
    loaded = zoo.load(TINY_ENTRY.name, progress=False)
    assert tiny == [TINY_ENTRY.name] and loaded.record["family"] == "clip"
    assert len(loaded.record["losses"]) == 4
    assert all(math.isfinite(v) for v in loaded.record["losses"])
    text = loaded.model.encode_text(["a red 3 left of a blue 7"])  # the tokenizer came with build
    assert text.shape == (1, 8) and text.norm().item() == pytest.approx(1.0)
    again = zoo.load(TINY_ENTRY.name, progress=False)  # from the cache: same weights, no training
    assert tiny == [TINY_ENTRY.name]
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.model.state_dict().values(), again.model.state_dict().values())
    )
    assert torch.equal(again.model.encode_text(["a red 3 left of a blue 7"]), text)
    retrained = zoo.load(TINY_ENTRY.name, retrain=True, progress=False)  # deterministic
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.model.state_dict().values(), retrained.model.state_dict().values())
    )
    assert main(["sample", TINY_ENTRY.name, "--n", "1", "--out", str(tmp_path / "x.npz")]) == 2
    assert "'test-clip-tiny' is a clip and cannot be sampled" in capsys.readouterr().err


def test_training_refuses_data_that_is_not_images_and_tokens(tiny):
    family = get_family("clip")
    entry = zoo.resolve(TINY_ENTRY.name)
    bad = [torch.zeros(4, 3, 32, 32), torch.zeros(4, 10)]  # float tokens
    with pytest.raises(ValueError, match=r"trains on \[images \(N, 3, 32, 32\), tokens \(N, 10\) int64\]"):
        family.train(entry, bad, dependencies={}, checkpoint=None, progress=False, device=torch.device("cpu"))


def test_a_shortened_scenes_clip_trains_through_the_zoo(tiny):
    """The book's entry (its spec, data set and batch) for two steps, on 600 scenes: its pieces fit."""
    entry = zoo.entry("scenes-clip")
    fewer = zoo.DataSpec.dataset(entry.data.name, **{**entry.data.kwargs, "n1": 300, "n2": 300})
    short = replace(entry, name="test-scenes-clip-short", data=fewer, train=replace(entry.train, steps=2))
    zoo.register(short)
    try:
        loaded = zoo.load(short.name, progress=False)
    finally:
        zoo.unregister(short.name)
    assert tiny == [short.name] and len(loaded.record["losses"]) == 2
    # At the start every caption is about as likely as any other: the loss is near log(batch).
    assert loaded.record["losses"][0] == pytest.approx(math.log(entry.train.batch_size), abs=0.5)
    assert loaded.model.encode_text(["a small red 3 in the top left"]).shape == (1, entry.spec.embed_dim)
