"""Audio (chapter 15): WAV files, pitch, the mel filterbank and spectrogram, LSD and sound checks."""

import io
import math

import numpy as np
import pytest
import scipy.io.wavfile
import torch

from diffusion_lib import audio, data
from diffusion_lib.data import WAVEFORM_CLASSES

RATE = 4000  # a rate and a length for the functions' own tests (the data's are below)
LENGTH = 1024


def tone(f0, harmonics=(1.0,), *, rate=RATE, length=LENGTH, phase=0.3, peak=0.8):
    t = np.arange(length) / rate
    x = sum(h * np.sin(2 * np.pi * (k + 1) * f0 * t + (k + 1) * phase) for k, h in enumerate(harmonics))
    return peak * x / np.abs(x).max()


def noise(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------- WAV files
def test_wav_round_trip_and_header(tmp_path):
    x = np.clip(0.6 * noise(3000).numpy(), -1, 1)
    x[:3] = (-1.0, 1.0, 0.0)
    path = tmp_path / "clip.wav"
    audio.write_wav(path, torch.from_numpy(x), 8000)
    back, rate = audio.read_wav(path)
    assert rate == 8000 and back.dtype == np.float32 and back.shape == x.shape
    assert np.abs(back - x).max() <= 1 / 32767 + 1e-7
    assert (back[:3] == (-1.0, 1.0, 0.0)).all(), "the ends of the range are stored exactly"
    rate, raw = scipy.io.wavfile.read(path)
    assert rate == 8000 and raw.dtype == np.int16 and raw.ndim == 1, "16-bit mono at the given rate"
    assert raw[0] == -32767 and raw[1] == 32767
    assert path.read_bytes() == audio.wav_bytes(x, 8000)
    header = audio.wav_bytes(x, 8000)[:44]
    assert header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt "
    channels, rate, _, _, bits = np.frombuffer(header[22:36], dtype="<u2")[[0, 1, 4, 5, 6]]
    assert (channels, rate, bits) == (1, 8000, 16)
    assert not list(tmp_path.glob(".*.tmp")), "written atomically: no temporary file left"


def test_wav_rounds_to_the_nearest_level():
    raw = scipy.io.wavfile.read(io.BytesIO(audio.wav_bytes(np.array([0.5, -0.25, 1e-5]), 100)))[1]
    assert raw.tolist() == [round(0.5 * 32767), round(-0.25 * 32767), 0]


@pytest.mark.parametrize(
    "clip, rate, message",
    [
        (np.array([0.0, np.nan]), 100, "audio must be finite, got 1 NaN"),
        (np.array([0.0, np.inf]), 100, "audio must be finite"),
        (np.array([0.0, 1.5, -2.0]), 100, r"audio must lie in \[-1, 1\], got values from -2 to 1.5"),
        (np.zeros((2, 5)), 100, r"audio must be one clip of shape \(L,\).*got shape \(2, 5\)"),
        (np.zeros(0), 100, r"L >= 1, got shape \(0,\)"),
        (np.array(["a", "b"]), 100, "audio must be an array of numbers"),
        (np.zeros(4) + 0j, 100, "audio must hold real numbers"),
        (np.zeros(4), 0, r"sample_rate must be an int in \[1, 384000\], got 0"),
        (np.zeros(4), 384_001, "got 384001"),
        (np.zeros(4), 8000.0, "got 8000.0"),
        (np.zeros(4), True, "got True"),
    ],
)
def test_wav_refuses_bad_input(tmp_path, clip, rate, message):
    with pytest.raises(ValueError, match=message):
        audio.wav_bytes(clip, rate)
    with pytest.raises(ValueError, match=message):
        audio.write_wav(tmp_path / "x.wav", clip, rate)
    assert not list(tmp_path.iterdir()), "nothing written"


def test_read_wav_refuses_stereo_and_other_formats(tmp_path):
    scipy.io.wavfile.write(tmp_path / "stereo.wav", 100, np.zeros((10, 2), np.int16))
    with pytest.raises(ValueError, match="path must be a mono WAV file, got 2 channels"):
        audio.read_wav(tmp_path / "stereo.wav")
    scipy.io.wavfile.write(tmp_path / "u8.wav", 100, np.zeros(10, np.uint8))
    with pytest.raises(ValueError, match="16-bit PCM or float samples, got uint8"):
        audio.read_wav(tmp_path / "u8.wav")
    scipy.io.wavfile.write(tmp_path / "float.wav", 100, np.full(10, 0.25, np.float32))
    assert audio.read_wav(tmp_path / "float.wav")[0].tolist() == [0.25] * 10
    with pytest.raises(FileNotFoundError):
        audio.write_wav(tmp_path / "missing" / "x.wav", np.zeros(4), 100)


# ---------------------------------------------------------------- pitch
@pytest.mark.parametrize("f0", [82.41, 110.0, 220.0, 440.0, 555.5, 987.77])
def test_fundamental_frequency_of_pure_tones(f0):
    estimate = audio.fundamental_frequency(tone(f0, rate=8000, length=2048), 8000)
    assert estimate.shape == () and abs(estimate / f0 - 1) < 0.005, estimate


@pytest.mark.parametrize("label", range(len(WAVEFORM_CLASSES)))
def test_fundamental_frequency_of_the_waveform_classes(label):
    # the class's harmonics at its exact f0, at three phases; then the data (detuned by up to
    # 0.5%, with vibrato: within 1% of the class's f0)
    c = WAVEFORM_CLASSES[label]
    # At the data's rate: 3 kHz puts C4's period between two samples (11.47), where whole lags
    # alone made an octave error.
    rate, length = data.WAVEFORM_SAMPLE_RATE, data.WAVEFORM_LENGTH
    clips = np.stack(
        [tone(c.frequency, c.harmonics, phase=p, rate=rate, length=length) for p in (0.0, 1.0, 2.5)]
    )
    assert np.abs(audio.fundamental_frequency(clips, rate) / c.frequency - 1).max() < 0.005
    notes = data.waveforms(16, label=label, seed=3)
    estimate = audio.fundamental_frequency(notes.audio, notes.sample_rate)
    assert estimate.shape == (16,) and np.abs(estimate / c.frequency - 1).max() < 0.01


def test_fundamental_frequency_accepts_every_layout():
    clips = np.stack([tone(110.0), tone(220.0)])
    expected = audio.fundamental_frequency(clips, RATE)
    for layout in (torch.from_numpy(clips), clips[:, None], torch.from_numpy(clips).float()[:, None]):
        assert np.allclose(audio.fundamental_frequency(layout, RATE), expected, rtol=1e-5)
    assert np.allclose(expected, [110.0, 220.0], rtol=0.005)


def test_the_octave_guard_prefers_the_first_period():
    # A tone whose amplitude alternates by 20% from one period to the next repeats exactly only
    # every 2T, so its autocorrelation is highest at 2T (an octave too low); the guard takes T.
    f0 = 200.0
    t = np.arange(LENGTH) / RATE
    x = np.sin(2 * np.pi * f0 * t) * (1 + 0.2 * np.sign(np.sin(np.pi * f0 * t)))
    centred = x - x.mean()
    r = np.correlate(centred, centred, "full")[LENGTH - 1 :]
    period = RATE / f0  # 20 samples
    assert r[int(2 * period)] > r[int(period)], "the global maximum is at 2T: the octave trap is set"
    assert abs(audio.fundamental_frequency(x, RATE) / f0 - 1) < 0.005
    # a strong sub-harmonic is a real period: 2T wins beyond the guard's 90%
    y = np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(np.pi * f0 * t)
    assert abs(audio.fundamental_frequency(y, RATE) / (f0 / 2) - 1) < 0.005


def test_fundamental_frequency_of_noise_silence_and_the_search_range():
    # White noise has no period: the estimate is the lag of its largest chance correlation,
    # somewhere in [fmin, fmax] and different for each clip.
    estimate = audio.fundamental_frequency(noise((8, LENGTH)), RATE)
    assert np.isfinite(estimate).all() and (estimate >= 80).all() and (estimate <= 1000).all()
    assert len(np.unique(np.round(estimate))) > 4
    assert np.isnan(audio.fundamental_frequency(np.full(LENGTH, 0.3), RATE)), "a constant clip: NaN"
    # the range decides: a 440 Hz tone searched below 300 Hz is found at a multiple of its period
    assert abs(audio.fundamental_frequency(tone(440.0), RATE, fmax=300.0) - 220.0) < 2.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(fmin=0.0), "fmin must be a number > 0 Hz, got 0.0"),
        (dict(fmin=-5), "fmin must be a number > 0 Hz"),
        (dict(fmax=None), "fmax must be a number > 0 Hz, got None"),
        (dict(fmin=500.0, fmax=400.0), r"fmax must be finite and in \(fmin, sample_rate / 2\]"),
        (dict(fmax=2500.0), r"\(80.0, 2000.0\], got 2500.0"),
        (dict(fmin=3.0), "fmin must leave a period of at most L - 2 = 1022 samples"),
    ],
)
def test_fundamental_frequency_refuses_bad_ranges(kwargs, message):
    with pytest.raises(ValueError, match=message):
        audio.fundamental_frequency(tone(110.0), RATE, **kwargs)


@pytest.mark.parametrize(
    "clips, message",
    [
        (
            np.zeros((2, 3, LENGTH)),
            r"audio must have shape \(N, L\), \(N, 1, L\) or \(L,\), got \(2, 3, 1024\)",
        ),
        (np.zeros((0, LENGTH)), "at least one clip"),
        (np.array([np.nan] * LENGTH), "audio must be finite"),
        ("noise", "audio must be an array of numbers"),
    ],
)
def test_fundamental_frequency_refuses_bad_clips(clips, message):
    with pytest.raises(ValueError, match=message):
        audio.fundamental_frequency(clips, RATE)
    with pytest.raises(ValueError, match="sample_rate must be an int"):
        audio.fundamental_frequency(tone(110.0), 4000.5)


# ---------------------------------------------------------------- mel filterbank and spectrogram
def htk_mel(f):
    return 2595.0 * math.log10(1.0 + f / 700.0)


def test_the_mel_scale_is_htk():
    assert abs(htk_mel(1000.0) - 1000.0) < 0.02
    assert audio.hz_to_mel(1000.0) == pytest.approx(999.9855, abs=1e-3)
    assert audio.hz_to_mel(np.array([0.0, 700.0]))[1] == pytest.approx(2595 * math.log10(2))
    f = torch.tensor([0.0, 100.0, 4000.0], dtype=torch.float64)
    assert torch.allclose(audio.mel_to_hz(audio.hz_to_mel(f)), f)
    assert np.allclose(audio.mel_to_hz(audio.hz_to_mel([50.0, 5000.0])), [50.0, 5000.0])


def test_mel_filterbank_triangles_peak_at_mel_spaced_centres():
    n_fft, n_mels, rate, fmin, fmax = 4096, 20, 16000, 100.0, 6000.0
    bank = audio.mel_filterbank(n_fft, n_mels, rate, fmin=fmin, fmax=fmax)
    assert bank.shape == (n_mels, n_fft // 2 + 1) and bank.dtype == torch.float32
    edges_mel = np.linspace(htk_mel(fmin), htk_mel(fmax), n_mels + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    bins = np.arange(n_fft // 2 + 1) * rate / n_fft
    spacing = rate / n_fft
    weights = bank.double().numpy()
    for k in range(n_mels):
        low, centre, high = edges[k : k + 3]
        row = weights[k]
        peak = int(row.argmax())
        assert abs(bins[peak] - centre) <= spacing, f"filter {k} peaks at its centre"
        assert row.max() > 1 - spacing / (centre - low) and row.max() <= 1
        # A bin exactly on an edge (6,000 Hz is bin 1,536 here) has weight 0 up to the rounding
        # of the mel round trip (about 1e-15): neither inside nor strictly outside.
        on_edge = np.isclose(bins, low, rtol=0, atol=1e-6) | np.isclose(bins, high, rtol=0, atol=1e-6)
        inside = (bins > low) & (bins < high) & ~on_edge
        outside = ~inside & ~on_edge
        assert (row[outside] == 0).all() and (row[inside] > 0).all(), f"filter {k} is zero outside its edges"
        assert (np.abs(row[on_edge]) <= 1e-9).all(), f"filter {k} is zero on its edges"
        up, down = inside & (bins <= centre), inside & (bins >= centre)
        assert np.allclose(row[up], (bins[up] - low) / (centre - low), atol=1e-6), "rising edge"
        assert np.allclose(row[down], (high - bins[down]) / (high - centre), atol=1e-6), "falling edge"
    # half-overlapping triangles sum to 1 between the first and the last centre
    middle = (bins >= edges[1]) & (bins <= edges[-2])
    assert np.allclose(weights[:, middle].sum(0), 1.0, atol=1e-6)


def test_mel_filterbank_defaults_and_errors():
    bank = audio.mel_filterbank(256, 40, RATE)
    assert bank.shape == (40, 129) and (bank.amax(1) > 0).all()
    assert bank[:, -1].sum() == 0 and bank[-1, -2] > 0, "fmax defaults to the Nyquist frequency"
    bank.zero_()
    assert audio.mel_filterbank(256, 40, RATE).sum() > 0, "a fresh tensor each call"
    for args, kwargs, message in [
        ((1, 40, RATE), {}, "n_fft must be an int >= 2, got 1"),
        ((256, 0, RATE), {}, "n_mels must be an int >= 1, got 0"),
        ((256, 40, 0), {}, r"sample_rate must be an int in \[1, 384000\]"),
        ((256, 40, RATE), dict(fmin=-1.0), r"fmin must be a number in \[0, sample_rate / 2\)"),
        ((256, 40, RATE), dict(fmax=3000.0), r"fmax must be None or a number in \(fmin, sample_rate / 2\]"),
        ((256, 40, RATE), dict(fmin=500.0, fmax=400.0), "got 400.0"),
        ((64, 128, RATE), {}, "n_mels must leave every filter an FFT bin: with n_fft=64"),
    ]:
        with pytest.raises(ValueError, match=message):
            audio.mel_filterbank(*args, **kwargs)


def test_mel_spectrogram_of_a_tone_peaks_in_its_filter():
    bank = audio.mel_filterbank(256, 40, RATE)
    for f0 in (150.0, 440.0, 1234.0):
        clip = torch.from_numpy(tone(f0)).float()[None]
        mel = audio.mel_spectrogram(clip, RATE)
        assert mel.shape == (1, 40, 1 + LENGTH // 64) and mel.dtype == torch.float32
        # the filter with the most weight at the tone's bin
        expected = int(bank[:, round(f0 / (RATE / 256))].argmax())
        assert (mel[0, :, 2:-2].argmax(0) == expected).all(), f"{f0} Hz"


def test_mel_spectrogram_magnitude_log_shapes_and_gradients():
    x = noise((3, 1, 500)).float().mul(0.3).requires_grad_()
    mel = audio.mel_spectrogram(x, RATE, n_fft=128, hop=50, n_mels=16)
    assert mel.shape == (3, 16, 1 + 500 // 50)
    linear = audio.mel_spectrogram(x[:, 0], RATE, n_fft=128, hop=50, n_mels=16, log=False)
    assert torch.allclose(mel, torch.log(linear.clamp(min=1e-5)))
    doubled = audio.mel_spectrogram(2 * x[:, 0], RATE, n_fft=128, hop=50, n_mels=16, log=False)
    assert torch.allclose(doubled, 2 * linear, rtol=1e-5), "magnitude, not power: linear in the clip"
    mel.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    silent = torch.zeros(1, 300, requires_grad=True)
    quiet = audio.mel_spectrogram(silent, RATE)
    assert torch.allclose(quiet, torch.tensor(math.log(1e-5))), "the floor"
    quiet.sum().backward()
    assert torch.isfinite(silent.grad).all(), "no NaN gradient at silence"
    batch = noise((2, 400))
    assert audio.mel_spectrogram(batch, RATE).dtype == torch.float64


@pytest.mark.parametrize(
    "clips, kwargs, message",
    [
        (np.zeros((2, 400)), {}, "audio must be a floating-point tensor, got ndarray"),
        (torch.zeros(2, 400, dtype=torch.long), {}, "got dtype torch.int64"),
        (torch.zeros(400), {}, r"audio must have shape \(N, L\) or \(N, 1, L\), got \(400,\)"),
        (torch.zeros(2, 2, 400), {}, r"got \(2, 2, 400\)"),
        (torch.zeros(0, 400), {}, "at least one clip"),
        (torch.zeros(2, 128), {}, "audio must be longer than n_fft // 2 = 128 samples"),
        (torch.zeros(2, 400), dict(hop=0), "hop must be an int >= 1, got 0"),
        (torch.zeros(2, 400), dict(floor=0.0), "floor must be a finite number > 0, got 0.0"),
        (torch.zeros(2, 400), dict(log=1), "log must be True or False, got 1"),
        (torch.zeros(2, 400), dict(n_fft=1), "n_fft must be an int >= 2"),
    ],
)
def test_mel_spectrogram_refuses_bad_input(clips, kwargs, message):
    with pytest.raises(ValueError, match=message):
        audio.mel_spectrogram(clips, RATE, **kwargs)


# ---------------------------------------------------------------- log-spectral distance
def test_log_spectral_distance_closed_forms():
    a = noise((4, 1, 800)).mul(0.2)
    b = noise((4, 1, 800), seed=1).mul(0.2)
    assert np.allclose(audio.log_spectral_distance(a, a, RATE), 0.0)
    half = audio.log_spectral_distance(a, 0.5 * a, RATE)
    assert half.shape == (4,) and np.allclose(half, 20 * math.log10(2), rtol=0, atol=1e-9), half
    assert abs(20 * math.log10(2) - 6.0206) < 1e-4
    ab, ba = audio.log_spectral_distance(a, b, RATE), audio.log_spectral_distance(b, a, RATE)
    assert np.allclose(ab, ba) and (ab > 3).all(), "symmetric, and independent noise is far"
    one = audio.log_spectral_distance(a[0, 0], b[0, 0].numpy(), RATE, n_fft=128, hop=32)
    assert one.shape == ()
    # by hand for one clip: frames of a Hann-windowed STFT, RMS over bins of the dB ratio
    window = torch.hann_window(128, dtype=torch.float64)
    spectra = [torch.stft(c[0, 0], 128, 32, window=window, return_complex=True).abs() ** 2 for c in (a, b)]
    by_hand = (10 * torch.log10(spectra[0] / spectra[1])).square().mean(0).sqrt().mean()
    assert abs(one - by_hand.item()) < 1e-9


def test_log_spectral_distance_refuses_bad_input():
    a = np.zeros((2, 400))
    with pytest.raises(ValueError, match=r"a and b must have the same shape, got \(2, 400\) and \(2, 300\)"):
        audio.log_spectral_distance(a, np.zeros((2, 300)), RATE)
    with pytest.raises(ValueError, match="b must be finite"):
        audio.log_spectral_distance(a, np.full((2, 400), np.inf), RATE)
    with pytest.raises(ValueError, match="a must be longer than n_fft // 2"):
        audio.log_spectral_distance(a, a, RATE, n_fft=1024)
    with pytest.raises(ValueError, match="hop must be an int >= 1"):
        audio.log_spectral_distance(a, a, RATE, hop=0)
    with pytest.raises(ValueError, match="sample_rate must be an int"):
        audio.log_spectral_distance(a, a, -1)


# ---------------------------------------------------------------- defects
def test_dc_offset_and_clipped_fraction():
    clips = np.zeros((3, 1, 10))
    clips[0, 0] = 0.25
    clips[1, 0, :4] = (1.0, -1.0, 0.9995, -0.9989)
    clips[2, 0] = np.linspace(-0.5, 0.5, 10) + 0.1
    assert np.allclose(audio.dc_offset(clips), [0.25, (0.9995 - 0.9989) / 10, 0.1])
    assert np.allclose(audio.clipped_fraction(clips), [0.0, 0.3, 0.0])
    assert np.allclose(audio.clipped_fraction(torch.from_numpy(clips), threshold=0.25), [1.0, 0.4, 0.6])
    assert audio.dc_offset(np.full(5, -0.5)).shape == () and audio.dc_offset(np.full(5, -0.5)) == -0.5
    with pytest.raises(ValueError, match=r"threshold must be a number in \(0, 1\], got 0"):
        audio.clipped_fraction(clips, threshold=0)
    with pytest.raises(ValueError, match="audio must be finite"):
        audio.dc_offset(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match=r"audio must have shape"):
        audio.clipped_fraction(np.zeros((1, 2, 3, 4)))
