"""The captioned scenes of chapters 10–13: the caption grammar and its inverse, the rendered
content against the captions, the held-out combinations, glyph provenance and bad input."""

import collections
import itertools
import math
import re

import pytest
import torch

from diffusion_lib import data
from diffusion_lib.data import (
    SCENE_ATTRIBUTES,
    SCENE_GLYPH_PIXELS,
    SCENE_RELATIONS,
    SCENE_SPLITS,
    SCENE_WORDS,
    heldout_combinations,
    parse_scene_caption,
    scene_caption,
    scene_captions,
    scenes,
)

# The colours' RGB as the captions name them: which channels a glyph of that colour lights up.
RGB = {
    "red": (1, 0, 0),
    "green": (0, 1, 0),
    "blue": (0, 0, 1),
    "yellow": (1, 1, 0),
    "magenta": (1, 0, 1),
    "cyan": (0, 1, 1),
}
ONE_COUNT, TWO_COUNT = 10 * 6 * 4 * 2, 10 * 9 * 6 * 5 * 2  # combinations of one / two objects


@pytest.fixture(scope="module")
def one_train():
    return scenes(3000, seed=11, split="train")


@pytest.fixture(scope="module")
def one_heldout():
    return scenes(1000, seed=12, split="heldout")


@pytest.fixture(scope="module")
def two_train():
    return scenes(2000, seed=13, split="train", objects=2)


def ink(images):
    """Non-background pixels (N, 32, 32): some channel above -1."""
    return (images > -1).any(dim=1)


def bounding_box(mask):
    """(top, left, height, width) of the True pixels of each (32, 32) mask, as int64 (N,) tensors."""
    rows, cols = mask.any(dim=2), mask.any(dim=1)
    down, across = torch.arange(mask.shape[1]), torch.arange(mask.shape[2])
    top = torch.where(rows, down, 99).amin(dim=1)
    left = torch.where(cols, across, 99).amin(dim=1)
    bottom = torch.where(rows, down, -1).amax(dim=1)
    right = torch.where(cols, across, -1).amax(dim=1)
    return top, left, bottom - top + 1, right - left + 1


# ---------------------------------------------------------------- the grammar
def test_attribute_tables_are_the_documented_ones():
    assert SCENE_ATTRIBUTES == {
        "digit": tuple("0123456789"),
        "colour": ("red", "green", "blue", "yellow", "magenta", "cyan"),
        "position": ("top left", "top right", "bottom left", "bottom right"),
        "size": ("small", "large"),
    }
    assert SCENE_RELATIONS == ("left of", "above") and SCENE_SPLITS == ("train", "heldout")
    assert scene_caption(digit=3, colour=0, position=0, size=0) == "a small red 3 in the top left"
    assert scene_caption(digit=(3, 7), colour=(0, 2), relation=0) == "a red 3 left of a blue 7"
    assert scene_caption(9, 5, 3, 1) == "a large cyan 9 in the bottom right"
    assert scene_caption(digit=[0, 1], colour=[4, 3], relation=1) == "a magenta 0 above a yellow 1"


def test_scene_words_are_every_caption_word_sorted_once():
    every = scene_captions(1)[0] + scene_captions(2)[0]
    used = {word for caption in every for word in caption.split(" ")}
    assert set(SCENE_WORDS) == used
    assert list(SCENE_WORDS) == sorted(set(SCENE_WORDS)), "sorted, no duplicates"
    assert "of" in SCENE_WORDS and "above" in SCENE_WORDS and "9" in SCENE_WORDS


@pytest.mark.parametrize("objects, count", [(1, ONE_COUNT), (2, TWO_COUNT)])
def test_every_caption_parses_back_to_its_attributes(objects, count):
    captions, attributes = scene_captions(objects)
    assert len(captions) == count == len(set(captions)), "every combination once"
    for i, caption in enumerate(captions):
        row = {name: t[i].tolist() for name, t in attributes.items()}
        if objects == 2:
            row["digit"], row["colour"] = tuple(row["digit"]), tuple(row["colour"])
        assert scene_caption(**row) == caption
        parsed = parse_scene_caption(caption)
        assert parsed == row and all(type(v) in (int, tuple) for v in parsed.values())
    if objects == 2:
        assert bool((attributes["digit"][:, 0] != attributes["digit"][:, 1]).all())
        assert bool((attributes["colour"][:, 0] != attributes["colour"][:, 1]).all())
        assert torch.bincount(attributes["relation"]).tolist() == [count // 2, count // 2]


def test_one_object_captions_are_in_the_documented_index_order():
    captions, attributes = scene_captions(1)
    d, c, p, s = (attributes[name] for name in ("digit", "colour", "position", "size"))
    assert torch.equal(((d * 6 + c) * 4 + p) * 2 + s, torch.arange(ONE_COUNT))
    assert all(t.dtype == torch.int64 and t.shape == (ONE_COUNT,) for t in attributes.values())
    first_two = scene_captions(2)[1]
    assert first_two["digit"][:3].tolist() == [[0, 1]] * 3 and first_two["relation"][:2].tolist() == [0, 1]


def test_scene_captions_returns_fresh_objects():
    captions, attributes = scene_captions(1)
    captions.clear()
    attributes["digit"].zero_()
    again_captions, again = scene_captions(1)
    assert len(again_captions) == ONE_COUNT and again["digit"].max().item() == 9
    mask = heldout_combinations(1)
    mask.zero_()
    assert heldout_combinations(1).any()


# ---------------------------------------------------------------- held-out combinations
@pytest.mark.parametrize("objects, count", [(1, ONE_COUNT), (2, TWO_COUNT)])
def test_heldout_is_a_fixed_fifth_and_the_splits_partition(objects, count):
    mask = heldout_combinations(objects)
    assert mask.dtype == torch.bool and mask.shape == (count,)
    assert int(mask.sum()) == round(0.2 * count)
    assert torch.equal(mask, heldout_combinations(objects)), "fixed"
    every, attributes = scene_captions(objects)
    train, train_attributes = scene_captions(objects, split="train")
    heldout, _ = scene_captions(objects, split="heldout")
    assert heldout == [c for c, h in zip(every, mask.tolist()) if h], "aligned with scene_captions"
    assert train == [c for c, h in zip(every, mask.tolist()) if not h]
    assert not set(train) & set(heldout) and len(train) + len(heldout) == count
    for name, t in train_attributes.items():
        assert torch.equal(t, attributes[name][~mask])


def test_the_heldout_table_is_pinned():
    # Golden values: a change of the table (its seed, fraction or order) changes every chapter's
    # held-out evaluation, so it must be deliberate.
    one, two = heldout_combinations(1).nonzero().squeeze(1), heldout_combinations(2).nonzero().squeeze(1)
    assert one[:5].tolist() == [1, 6, 7, 8, 10] and one.sum().item() == 23963
    assert two[:5].tolist() == [4, 9, 12, 14, 15] and two.sum().item() == 2924921
    assert scene_captions(2, split="heldout")[0][:2] == [
        "a red 0 left of a yellow 1",
        "a red 0 above a cyan 1",
    ]


def test_every_attribute_value_and_pair_of_values_occurs_in_train():
    _, train = scene_captions(1, split="train")
    for name, values in SCENE_ATTRIBUTES.items():
        assert set(train[name].tolist()) == set(range(len(values))), name
    for a, b in itertools.combinations(SCENE_ATTRIBUTES, 2):
        pairs = set(zip(train[a].tolist(), train[b].tolist()))
        assert len(pairs) == len(SCENE_ATTRIBUTES[a]) * len(SCENE_ATTRIBUTES[b]), (a, b)


def test_train_never_shows_a_heldout_combination_and_draws_uniformly():
    heldout = set(scene_captions(1, split="heldout")[0])
    train = scenes(20_000, seed=5, split="train")
    assert not set(train.captions) & heldout
    drawn = collections.Counter(train.captions)
    counts = torch.tensor([drawn[c] for c in scene_captions(1, split="train")[0]])
    assert counts.min().item() > 0, "every train combination is drawn"
    expected = 20_000 / len(counts)
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    dof = len(counts) - 1
    assert abs(chi2 - dof) < 6 * math.sqrt(2 * dof), "uniform over the split's combinations"
    drawn = scenes(20_000, seed=6, split="heldout")
    assert set(drawn.captions) == heldout, "held-out scenes show held-out combinations only, all of them"


def test_two_object_splits_are_disjoint_in_samples():
    heldout = set(scene_captions(2, split="heldout")[0])
    train = scenes(20_000, seed=7, split="train", objects=2)
    assert not set(train.captions) & heldout
    assert len(set(train.captions)) > 0.9 * (TWO_COUNT - len(heldout))
    assert set(scenes(5000, seed=8, split="heldout", objects=2).captions) <= heldout


# ---------------------------------------------------------------- the sampled scenes
@pytest.mark.parametrize("split", SCENE_SPLITS)
@pytest.mark.parametrize("objects", [1, 2])
def test_scenes_shapes_dtypes_range_and_captions(split, objects):
    n = 257
    one = scenes(n, seed=3, split=split, objects=objects)
    assert isinstance(one, data.Scenes)
    assert one.images.shape == (n, 3, 32, 32) and one.images.dtype == torch.float32
    assert one.images.min().item() == -1.0 and one.images.max().item() <= 1.0
    assert (one.images == -1).all(dim=1).float().mean().item() > 0.6, "mostly black background"
    assert isinstance(one.captions, list) and len(one.captions) == n
    names = ("digit", "colour", "position", "size") if objects == 1 else ("digit", "colour", "relation")
    assert tuple(one.attributes) == names
    for name, t in one.attributes.items():
        assert t.dtype == torch.int64
        assert t.shape == ((n, 2) if objects == 2 and name != "relation" else (n,)), name
    for i in range(0, n, 16):
        row = {name: t[i] for name, t in one.attributes.items()}  # tensors are accepted as indices
        assert scene_caption(**row) == one.captions[i]


def test_same_seed_same_scenes_other_seed_other_scenes():
    for objects in (1, 2):
        a = scenes(300, seed=4, objects=objects)
        b = scenes(300, seed=4, objects=objects)
        c = scenes(300, seed=5, objects=objects)
        assert torch.equal(a.images, b.images) and a.captions == b.captions
        assert all(torch.equal(a.attributes[k], b.attributes[k]) for k in a.attributes)
        assert not torch.equal(a.images, c.images) and a.captions != c.captions
    assert not torch.equal(scenes(50, seed=4).images, scenes(50, seed=4, split="heldout").images)


def test_the_colour_channels_match_the_caption(one_train):
    images = one_train.images
    for i, caption in enumerate(one_train.captions):
        on = RGB[caption.split()[2]]
        lit = (images[i] > -1).flatten(1).any(dim=1).tolist()
        assert lit == [bool(v) for v in on], (caption, lit)
        channels = [images[i, ch] for ch in range(3) if on[ch]]
        assert all(torch.equal(channels[0], other) for other in channels[1:]), "g·1 in every lit channel"


def test_the_object_lies_in_the_captioned_quadrant(one_train):
    mask = ink(one_train.images).double()
    grid = torch.arange(32, dtype=torch.float64)
    mass = mask.sum(dim=(1, 2))
    row = (mask.sum(dim=2) * grid).sum(dim=1) / mass
    col = (mask.sum(dim=1) * grid).sum(dim=1) / mass
    for i, caption in enumerate(one_train.captions):
        vertical, horizontal = caption.split()[-2:]
        assert (row[i] < 15.5) == (vertical == "top"), (caption, row[i].item())
        assert (col[i] < 15.5) == (horizontal == "left"), (caption, col[i].item())


def test_large_glyphs_are_larger_and_jitter_is_two_pixels(one_train):
    mask = ink(one_train.images)
    top, left, height, width = bounding_box(mask)
    pixels = mask.sum(dim=(1, 2))
    large = one_train.attributes["size"] == 1
    side = torch.where(large, SCENE_GLYPH_PIXELS["large"], SCENE_GLYPH_PIXELS["small"])
    # The bilinear glyphs of the digits span the whole height of their square (checked here), so
    # a glyph's box's top is its placement (the provenance test below checks it across too).
    assert torch.equal(height, side) and bool((width <= side).all())
    assert pixels[large].min() > pixels[~large].max(), "any large glyph covers more pixels than any small"
    assert SCENE_GLYPH_PIXELS == {"small": 10, "large": 16}
    position = one_train.attributes["position"]

    def tops(is_large, quadrant):
        return set(top[(large == is_large) & (position == quadrant)].tolist())

    # A small glyph is centred in its quadrant at offset 3 (or 19), then moves by -2..2.
    assert tops(False, 0) == tops(False, 1) == {1, 2, 3, 4, 5}
    assert tops(False, 2) == tops(False, 3) == {17, 18, 19, 20, 21}
    # A large glyph fills its quadrant; the jitter is cut where it would leave the canvas.
    assert tops(True, 0) == tops(True, 1) == {0, 1, 2}
    assert tops(True, 2) == tops(True, 3) == {14, 15, 16}


def test_two_objects_match_the_caption(two_train):
    images = two_train.images
    relation = two_train.attributes["relation"]
    lefts = 0
    for i, caption in enumerate(two_train.captions):
        words = caption.split()
        first, second = RGB[words[1]], RGB[words[-2]]
        is_left_of = words[3] == "left"
        assert is_left_of == (relation[i].item() == 0)
        lefts += is_left_of
        if is_left_of:
            halves = (images[i, :, :, :16], images[i, :, :, 16:])
        else:
            halves = (images[i, :, :16], images[i, :, 16:])
        for half, on in zip(halves, (first, second)):
            lit = (half > -1).flatten(1).any(dim=1).tolist()
            assert lit == [bool(v) for v in on], (caption, lit)
            _, _, height, width = bounding_box(ink(half[None]))
            assert torch.maximum(height, width).item() == SCENE_GLYPH_PIXELS["small"], "both small"
    assert 0.4 < lefts / len(images) < 0.6


def test_glyphs_come_from_the_split_s_own_handwriting(one_train, one_heldout):
    """Each rendered glyph is exactly a resized digit of its split's images, and of no other."""

    def bank(split, size):
        images, labels = data.digits(split)
        side = SCENE_GLYPH_PIXELS[size]
        up = torch.nn.functional.interpolate((images + 1) / 2, size=(side, side), mode="bilinear")
        return up.flatten(1), labels

    banks = {(s, z): bank(s, z) for s in ("train", "test") for z in ("small", "large")}

    def match(split, size, digit, intensity):
        """The least max-abs difference between a glyph of the split and a window of the image
        holding all its ink, and that window's (top, left)."""
        glyphs, labels = banks[(split, size)]
        side = SCENE_GLYPH_PIXELS[size]
        windows = torch.nn.functional.unfold(intensity[None, None], side)[0]  # (side², windows)
        outside = intensity.sum() - windows.sum(dim=0)  # ink outside each window
        gaps = (glyphs[labels == digit][:, :, None] - windows[None]).abs().amax(dim=1)
        best, where = (gaps + outside.abs()[None]).min(dim=0).values.min(dim=0)
        return best.item(), divmod(where.item(), 32 - side + 1)

    for drawn, own, other in ((one_train, "train", "test"), (one_heldout, "test", "train")):
        for i in range(0, 120, 4):
            digit, colour, position, size = (drawn.attributes[k][i].item() for k in drawn.attributes)
            size = SCENE_ATTRIBUTES["size"][size]
            lit = next(ch for ch, v in enumerate(RGB[SCENE_ATTRIBUTES["colour"][colour]]) if v)
            intensity = (drawn.images[i, lit] + 1) / 2  # g, since the lit channel's rgb is 1
            best, (top, left) = match(own, size, digit, intensity)
            assert best < 1e-5, (drawn.captions[i], own)
            assert match(other, size, digit, intensity)[0] > 0.05, (drawn.captions[i], other)
            # placed at its quadrant's centre, moved by at most 2 px, and on the canvas
            side = SCENE_GLYPH_PIXELS[size]
            centre_top = 16 * (position // 2) + (16 - side) // 2
            centre_left = 16 * (position % 2) + (16 - side) // 2
            assert abs(top - centre_top) <= 2 and abs(left - centre_left) <= 2, drawn.captions[i]


def test_the_registered_dataset_gives_images_and_attribute_labels():
    assert "scenes" in data.datasets() and '"scenes"' in data.training_tensors.__doc__
    tensors = data.training_tensors("scenes", n=64, seed=3)
    reference = scenes(64, seed=3)
    assert len(tensors) == 5 and torch.equal(tensors[0], reference.images)
    for t, name in zip(tensors[1:], ("digit", "colour", "position", "size")):
        assert torch.equal(t, reference.attributes[name]) and t.shape == (64,)
    heldout = data.training_tensors("scenes", n=8, seed=0, split="heldout")
    assert torch.equal(heldout[0], scenes(8, seed=0, split="heldout").images)
    assert data.training_tensors("scenes", seed=1)[0].shape == (10_000, 3, 32, 32), "default n"


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, r"n must be an int >= 1, got 0"),
        ({"n": 2.0}, r"n must be an int >= 1, got 2\.0"),
        ({"n": True}, r"n must be an int >= 1, got True"),
        ({"n": 4, "seed": -1}, r"seed must be an int >= 0, got -1"),
        ({"n": 4, "seed": 1.5}, r"seed must be an int >= 0, got 1\.5"),
        ({"n": 4, "split": "test"}, r"split must be one of train, heldout, got 'test'"),
        ({"n": 4, "objects": 3}, r"objects must be 1 or 2, got 3"),
        ({"n": 4, "objects": "2"}, r"objects must be 1 or 2, got '2'"),
        ({"n": 4, "objects": 1.0}, r"objects must be 1 or 2, got 1\.0"),
    ],
)
def test_scenes_rejects_bad_input(kwargs, match):
    n = kwargs.pop("n")
    with pytest.raises(ValueError, match=match):
        scenes(n, **kwargs)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: scene_captions(0), r"objects must be 1 or 2, got 0"),
        (lambda: scene_captions(1, split="all"), r"split must be one of train, heldout or None, got 'all'"),
        (lambda: heldout_combinations(True), r"objects must be 1 or 2, got True"),
        (lambda: data.training_tensors("scenes", n=-3), r"n must be an int >= 1, got -3"),
    ],
)
def test_the_tables_reject_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


ONE = {"digit": 3, "colour": 0, "position": 0, "size": 0}
TWO = {"digit": (3, 7), "colour": (0, 2), "relation": 0}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({**ONE, "digit": 10}, r"digit must be an int in 0\.\.9, got 10"),
        ({**ONE, "digit": -1}, r"digit must be an int in 0\.\.9, got -1"),
        ({**ONE, "digit": "3"}, r"digit must be an int in 0\.\.9 \(one object\) or a pair .*got '3'"),
        ({**ONE, "colour": 6}, r"colour must be an int in 0\.\.5, got 6"),
        ({**ONE, "position": 4}, r"position must be an int in 0\.\.3, got 4"),
        ({**ONE, "size": 2}, r"size must be an int in 0\.\.1, got 2"),
        ({**ONE, "size": 1.0}, r"size must be an int in 0\.\.1, got 1\.0"),
        (
            {**ONE, "colour": (0, 2)},
            r"colour must be an int in 0\.\.5 for one object .*got the pair \(0, 2\)",
        ),
        ({**ONE, "position": None}, r"position must be an int in 0\.\.3 for one object, got None"),
        ({**ONE, "relation": 0}, r"relation must be None for one object \(digit is an int\), got 0"),
        ({**TWO, "colour": 0}, r"colour must be a pair of different ints in 0\.\.5 .*got the int 0"),
        ({**TWO, "digit": (3, 3)}, r"digit must be a pair of different ints in 0\.\.9 .*got \(3, 3\)"),
        ({**TWO, "colour": (1, 1)}, r"colour must be a pair of different ints in 0\.\.5 .*got \(1, 1\)"),
        ({**TWO, "digit": (3, 10)}, r"digit must be a pair of different ints in 0\.\.9 .*got \(3, 10\)"),
        ({**TWO, "colour": (0, 6)}, r"colour must be a pair of different ints in 0\.\.5 .*got \(0, 6\)"),
        (
            {**TWO, "colour": (0, 2, 1)},
            r"colour must be a pair of different ints in 0\.\.5 .*got \(0, 2, 1\)",
        ),
        ({**TWO, "relation": 2}, r"relation must be an int in 0\.\.1, got 2"),
        ({**TWO, "relation": None}, r"relation must be an int in 0\.\.1 for two objects .*got None"),
        ({**TWO, "position": 0}, r"position must be None for two objects .*got 0"),
        ({**TWO, "size": 1}, r"size must be None for two objects .*got 1"),
        (
            {**TWO, "digit": (3, 7, 1)},
            r"digit must be an int in 0\.\.9 \(one object\) or a pair .*got \(3, 7, 1\)",
        ),
    ],
)
def test_scene_caption_rejects_bad_attributes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scene_caption(**kwargs)


@pytest.mark.parametrize(
    "caption",
    [
        "a small red 3 in the top middle",
        "a red 3 left of a blue 3",  # equal digits
        "a red 3 above a red 7",  # equal colours
        "A small red 3 in the top left",
        "a small red 3 in the top left ",
        "a large red 3",
        "",
    ],
)
def test_parse_scene_caption_rejects_what_the_grammar_cannot_produce(caption):
    with pytest.raises(
        ValueError, match=re.escape(f"caption {caption!r} is not a scene caption: the grammar is")
    ):
        parse_scene_caption(caption)


def test_parse_scene_caption_rejects_a_non_string():
    with pytest.raises(ValueError, match=r"caption must be a str, got int"):
        parse_scene_caption(3)
