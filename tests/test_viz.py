"""Image grids and animations."""

import base64
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_lib import viz


def test_image_grid_layout_and_scaling():
    images = torch.stack([torch.full((1, 2, 3), v) for v in (-1.0, 0.0, 1.0)])
    grid = viz.image_grid(images, nrow=2, pad=1)
    assert grid.shape == (1 + 2 * 3, 1 + 2 * 4)  # 2 rows of height 2, 2 columns of width 3, with padding
    assert grid[1, 1] == 0.0 and grid[1, 5] == 0.5 and grid[4, 1] == 1.0
    assert grid[0, 0] == 1.0, "padding is white"
    rgb = viz.image_grid(torch.zeros(4, 3, 5, 5))
    assert rgb.shape == (13, 13, 3)


@pytest.mark.parametrize(
    "images, message",
    [
        (torch.zeros(3, 8, 8), r"images must have shape \(N, C, H, W\), got \(3, 8, 8\)"),
        (torch.zeros(2, 2, 8, 8), "images must have 1 or 3 channels, got 2"),
        (torch.zeros(0, 1, 8, 8), "at least one image"),
    ],
)
def test_image_grid_rejects_bad_shapes(images, message):
    with pytest.raises(ValueError, match=message):
        viz.image_grid(images)


def test_image_grid_rejects_bad_nrow():
    with pytest.raises(ValueError, match="nrow must be an int >= 1, got 0"):
        viz.image_grid(torch.zeros(2, 1, 4, 4), nrow=0)


def _decode_gif(html: str) -> Image.Image:
    match = re.search(r'src="data:image/gif;base64,([A-Za-z0-9+/=]+)"', html)
    assert match, "the HTML holds a base64 GIF"
    return Image.open(io.BytesIO(base64.b64decode(match.group(1))))


def test_animation_html_holds_every_frame():
    frames = [torch.full((4, 1, 8, 8), v) for v in np.linspace(-1, 1, 5)]
    html = viz.animation_html(frames, titles=[f"t = {k}" for k in range(5)], fps=10, scale=4).data
    gif = _decode_gif(html)
    assert gif.n_frames == 5
    assert gif.size == ((1 + 2 * 9) * 4, (1 + 2 * 9) * 4 + 14)
    one_row = _decode_gif(viz.animation_html(frames, nrow=4, scale=1).data)
    assert one_row.size == (1 + 4 * 9, 1 + 9)


def test_animation_accepts_a_5d_tensor_and_checks_titles():
    frames = torch.linspace(-1, 1, 3).reshape(3, 1, 1, 1, 1).expand(3, 2, 1, 8, 8)
    assert _decode_gif(viz.animation_html(frames).data).n_frames == 3
    with pytest.raises(ValueError, match=r"titles must have one entry per frame \(3\), got 2"):
        viz.animation_html(frames, titles=["a", "b"])
    with pytest.raises(ValueError, match="fps must be in"):
        viz.animation_html(frames, fps=0)


def test_save_gif_writes_atomically(tmp_path):
    path = tmp_path / "forward.gif"
    viz.save_gif(torch.tensor([-1.0, 1.0]).reshape(2, 1, 1, 1, 1).expand(2, 1, 1, 8, 8), path)
    assert Image.open(path).n_frames == 2
    assert [p.name for p in tmp_path.iterdir()] == ["forward.gif"], "no temporary file is left behind"
    with pytest.raises(FileNotFoundError, match="folder does not exist"):
        viz.save_gif(torch.zeros(2, 1, 1, 8, 8), tmp_path / "missing" / "x.gif")


def test_show_images_draws_without_ticks():
    import matplotlib

    matplotlib.use("Agg")
    ax = viz.show_images(torch.zeros(4, 1, 8, 8), title="zeros")
    assert ax.get_title() == "zeros" and list(ax.get_xticks()) == []


def test_audio_html_holds_one_playable_wav_per_clip():
    import scipy.io.wavfile

    clips = torch.linspace(-0.9, 0.9, 3 * 500).reshape(3, 1, 500)
    html = viz.audio_html(clips, 4000, titles=["a <low> note", "b", "c"]).data
    sources = re.findall(r'<audio controls[^>]* src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(sources) == 3 and html.count("<audio") == 3
    for k, encoded in enumerate(sources):
        rate, samples = scipy.io.wavfile.read(io.BytesIO(base64.b64decode(encoded)))
        assert rate == 4000 and samples.dtype == np.int16 and samples.shape == (500,)
        assert np.abs(samples / 32767 - clips[k, 0].numpy()).max() <= 1 / 32767
    assert "a &lt;low&gt; note" in html and html.count("<figcaption") == 3, "titles as escaped captions"
    one = viz.audio_html(np.zeros(100), 8000).data
    assert one.count("<audio") == 1 and "<figcaption" not in one


@pytest.mark.parametrize(
    "clips, kwargs, message",
    [
        (torch.zeros(2, 2, 100), {}, r"clips must have shape \(N, L\), \(N, 1, L\) or \(L,\)"),
        (torch.zeros(0, 100), {}, "at least one clip"),
        (torch.zeros(2, 100), dict(titles=["a"]), r"titles must have one entry per clip \(2\), got 1"),
        (torch.full((1, 100), 1.5), {}, r"audio must lie in \[-1, 1\]"),
        (torch.zeros(1, 100), dict(sample_rate=0), "sample_rate must be an int"),
    ],
)
def test_audio_html_refuses_bad_input(clips, kwargs, message):
    with pytest.raises(ValueError, match=message):
        viz.audio_html(clips, **{"sample_rate": 4000, **kwargs})
