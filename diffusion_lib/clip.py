"""CLIP (Radford et al., 2021) on captioned scenes: the caption tokenizer, the symmetric InfoNCE
loss, cosine similarities, zero-shot classification and retrieval recall. Used in chapter 10.

The networks (an image encoder, a text encoder, the learned temperature) are in
:mod:`diffusion_lib.nets.clip`; the zoo family that trains them is ``families/clip.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Union

import torch
import torch.nn.functional as F

from . import data

__all__ = [
    "Tokenizer",
    "InfoNCE",
    "info_nce",
    "similarity",
    "zero_shot",
    "recall_at_k",
    "check_prompts",
    "read_prompts",
    "prompts_from",
]

# The special tokens, in the order of their ids: <pad> must be 0 (padding rows are zeros), then
# the start and the end of a caption, as in CLIP's <|startoftext|> and <|endoftext|>.
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")
# How many captions zero_shot encodes (and images it scores) per forward pass: large enough to
# amortise the call, small enough that the activations of the image encoder stay in a few MB.
ZERO_SHOT_BATCH = 500


def _check_captions(captions) -> list:
    """``captions`` as a list of str, or a ValueError naming what is wrong."""
    if isinstance(captions, str):
        raise ValueError(f"captions must be a list of str, got a single str {captions!r}; wrap it in a list")
    if not isinstance(captions, Sequence) or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"captions must be a list of str, got {type(captions).__name__}")
    if not captions:
        raise ValueError("captions must be a non-empty list of str, got an empty list")
    return list(captions)


class Tokenizer:
    """A word-level tokenizer of a closed caption language: one token per word.

    Defined in chapter 10.

    CLIP tokenizes text with a byte-pair encoding (BPE) of 49,152 sub-words, because web captions
    come from an open vocabulary: a word never seen before must still be split into known
    pieces. The scene captions of :func:`diffusion_lib.data.scenes` come from a grammar of about
    thirty words, all known in advance, so there is no unknown word to split: one id per word is
    the whole tokenizer, and a word outside the vocabulary is an error, not something to encode.

    A caption becomes ``<bos> w_1 … w_L <eos> <pad> …`` (ids; ``<pad>`` is 0), ``context_length``
    ids in all; the text encoder pools its output at ``<eos>``.

    Args:
        words: the vocabulary, distinct non-empty words without spaces (not a special token).
        context_length: the number of ids per caption, at least 3 (``<bos>``, one word, ``<eos>``).

    Raises:
        ValueError: a bad word list or context length.
    """

    def __init__(self, words: Sequence[str], context_length: int):
        if isinstance(words, str) or not isinstance(words, Sequence):
            raise ValueError(f"words must be a sequence of str, got {type(words).__name__}")
        words = list(words)
        if not words:
            raise ValueError("words must be a non-empty sequence of str, got an empty one")
        for word in words:
            if not isinstance(word, str) or not word or any(c.isspace() for c in word):
                raise ValueError(f"words must be non-empty str without spaces, got {word!r}")
            if word in SPECIAL_TOKENS:
                raise ValueError(f"words must not contain the special token {word!r}")
        repeated = sorted({w for w in words if words.count(w) > 1})
        if repeated:
            raise ValueError(f"words must be distinct, got {', '.join(map(repr, repeated))} more than once")
        if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 3:
            raise ValueError(f"context_length must be an int >= 3, got {context_length!r}")
        self.words = tuple(words)
        self.context_length = context_length
        self.vocabulary = (*SPECIAL_TOKENS, *self.words)
        self.ids = {word: i for i, word in enumerate(self.vocabulary)}
        self.pad_id, self.bos_id, self.eos_id = (self.ids[t] for t in SPECIAL_TOKENS)

    @classmethod
    def for_scenes(cls) -> Tokenizer:
        """The tokenizer of the scene captions: the words of :data:`diffusion_lib.data.SCENE_WORDS`,
        and room for the longest caption of the grammar (one or two objects) plus ``<bos>`` and
        ``<eos>``."""
        longest = max(
            len(caption.split()) for objects in (1, 2) for caption in data.scene_captions(objects)[0]
        )
        return cls(data.SCENE_WORDS, longest + 2)

    @property
    def vocab_size(self) -> int:
        """The number of ids: the special tokens and the words."""
        return len(self.vocabulary)

    def encode(self, captions: list) -> torch.Tensor:
        """The ids of each caption: ``<bos>``, one id per word, ``<eos>``, then ``<pad>`` (0).

        Args:
            captions: a list of str; words are separated by spaces.

        Returns:
            int64 tensor (N, context_length).

        Raises:
            ValueError: not a list of str (a bare str included), a word outside the vocabulary
                (naming the word and the caption), or a caption longer than the context.
        """
        captions = _check_captions(captions)
        tokens = torch.full((len(captions), self.context_length), self.pad_id, dtype=torch.int64)
        for row, caption in enumerate(captions):
            words = caption.split()
            if len(words) + 2 > self.context_length:
                raise ValueError(
                    f"caption {caption!r} has {len(words)} words; at most {self.context_length - 2} fit "
                    f"the context of {self.context_length} tokens (with <bos> and <eos>)"
                )
            for word in words:
                if word not in self.ids or word in SPECIAL_TOKENS:
                    raise ValueError(
                        f"unknown word {word!r} in caption {caption!r}; the vocabulary is "
                        f"{', '.join(self.words)}"
                    )
            ids = [self.bos_id, *(self.ids[w] for w in words), self.eos_id]
            tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return tokens

    def decode(self, tokens: torch.Tensor) -> list:
        """The captions of ids made by :meth:`encode` (special tokens dropped, words joined by a
        space), so that ``decode(encode(captions)) == captions`` for single-spaced captions.

        Args:
            tokens: an integer tensor (N, L) or (L,) of ids below :attr:`vocab_size`.

        Returns:
            a list of N str (one for a 1-D input).

        Raises:
            ValueError: not an integer tensor of 1 or 2 dimensions, or an id out of range.
        """
        if not torch.is_tensor(tokens) or tokens.dtype.is_floating_point or tokens.ndim not in (1, 2):
            found = (tuple(tokens.shape), tokens.dtype) if torch.is_tensor(tokens) else type(tokens).__name__
            raise ValueError(f"tokens must be an integer tensor (N, L) or (L,), got {found}")
        rows = tokens.reshape(-1, tokens.shape[-1]).tolist()
        bad = [i for row in rows for i in row if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"tokens must be ids in [0, {self.vocab_size}), got {bad[0]}")
        special = {self.pad_id, self.bos_id, self.eos_id}
        return [" ".join(self.vocabulary[i] for i in row if i not in special) for row in rows]

    def __repr__(self) -> str:
        return f"Tokenizer({self.vocab_size} ids, context_length={self.context_length})"


class InfoNCE(NamedTuple):
    """What :func:`info_nce` returns: the loss (the mean of the two directions), each direction's
    cross-entropy, and the logits (N, N), row i an image and column j a caption."""

    loss: torch.Tensor
    image_to_text: torch.Tensor
    text_to_image: torch.Tensor
    logits: torch.Tensor


def _check_features(image_features, text_features) -> None:
    for name, value in (("image_features", image_features), ("text_features", text_features)):
        if not torch.is_tensor(value) or value.ndim != 2 or not value.dtype.is_floating_point:
            found = (tuple(value.shape), value.dtype) if torch.is_tensor(value) else type(value).__name__
            raise ValueError(f"{name} must be a float tensor (N, D), got {found}")
    if image_features.shape[1] != text_features.shape[1]:
        raise ValueError(
            f"image_features and text_features must share their dimension D, got "
            f"{tuple(image_features.shape)} and {tuple(text_features.shape)}"
        )


def info_nce(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: Union[float, torch.Tensor]
) -> InfoNCE:
    """CLIP's symmetric InfoNCE loss on a batch of N matching (image, caption) pairs.

    Derived in chapter 10, eq. (clip-infonce).

    The logits are ``s · I Tᵀ`` (N, N), with s the logit scale (the inverse temperature) and the
    rows of I and T the L2-normalised features of the images and of their captions. Pair i is
    the positive of row i and column i, every other entry a negative:

        L = ½ [ −1/N Σ_i log softmax_j(logits)_ij − 1/N Σ_j log softmax_i(logits)_ij ],

    the cross-entropy with targets arange(N) over each row (image → text) and each column
    (text → image), averaged. Its value is log N when every logit is equal, and it tends to 0
    when each positive outscores every negative by a growing margin.

    Args:
        image_features: (N, D), assumed L2-normalised (as ``CLIP.encode_image`` returns them).
        text_features: (N, D), the features of the matching captions, assumed L2-normalised.
        logit_scale: s > 0, a float or a scalar tensor (``CLIP.logit_scale``, which is learned).

    Returns:
        :class:`InfoNCE` ``(loss, image_to_text, text_to_image, logits)``.

    Raises:
        ValueError: features that are not float (N, D) matrices of one shape, N < 1, or a
            logit scale that is not a positive finite scalar.
    """
    _check_features(image_features, text_features)
    if image_features.shape != text_features.shape or image_features.shape[0] < 1:
        raise ValueError(
            f"image_features and text_features must have the same shape (N, D), N >= 1, got "
            f"{tuple(image_features.shape)} and {tuple(text_features.shape)}"
        )
    scale = torch.as_tensor(logit_scale) if not torch.is_tensor(logit_scale) else logit_scale
    if scale.numel() != 1 or not bool(torch.isfinite(scale.detach()).all()) or float(scale.detach()) <= 0:
        raise ValueError(f"logit_scale must be a positive finite scalar, got {logit_scale!r}")
    logits = scale.reshape(()) * image_features @ text_features.T
    targets = torch.arange(logits.shape[0], device=logits.device)
    image_to_text = F.cross_entropy(logits, targets)
    text_to_image = F.cross_entropy(logits.T, targets)
    return InfoNCE((image_to_text + text_to_image) / 2, image_to_text, text_to_image, logits)


def similarity(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """The cosine similarity of every image to every caption.

    Defined in chapter 10.

    Args:
        image_features: (N, D).
        text_features: (M, D); normalised here, so raw features work too.

    Returns:
        (N, M): entry (i, j) is cos(image i, caption j), in [-1, 1].

    Raises:
        ValueError: not float matrices with the same D.
    """
    _check_features(image_features, text_features)
    return F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T


@torch.no_grad()
def zero_shot(
    model, images: torch.Tensor, captions: list, *, batch_size: int = ZERO_SHOT_BATCH
) -> torch.Tensor:
    """Zero-shot classification: for each image, the caption the model finds most similar.

    Defined in chapter 10.

    Every caption is a candidate class ("a small red 3 in the top left", …): no classifier is
    trained, the text encoder turns the class names into weights.

    Args:
        model: a CLIP model (``encode_image(images)`` and ``encode_text(captions)``, both
            L2-normalised, as :class:`diffusion_lib.nets.clip.CLIP` with a tokenizer).
        images: (N, 3, H, W) in [-1, 1].
        captions: the M candidate captions, a list of str.
        batch_size: images (and captions) encoded per forward pass, >= 1.

    Returns:
        int64 tensor (N,): the index in ``captions`` of each image's best caption.

    Raises:
        ValueError: a bad batch size or caption list; the model's own errors for bad images.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    captions = _check_captions(captions)
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[0] < 1:
        found = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"images must be a tensor (N, 3, H, W) with N >= 1, got {found}")
    text = torch.cat(
        [model.encode_text(captions[i : i + batch_size]) for i in range(0, len(captions), batch_size)]
    )
    best = [
        similarity(model.encode_image(images[i : i + batch_size]), text).argmax(dim=1)
        for i in range(0, images.shape[0], batch_size)
    ]
    return torch.cat(best)


def recall_at_k(similarity: torch.Tensor, k: int = 1) -> float:
    """Retrieval recall at k: the fraction of rows whose correct column (row i's is column i)
    is among the k most similar.

    Defined in chapter 10.

    Image → text retrieval takes the (N, M) image-by-caption similarities; text → image, their
    transpose. Ties count against the query: row i is a hit when fewer than k other columns
    score at least as high as column i, so a model that scores every caption alike gets no
    credit (a collapsed model's recall is k/M at best by chance, not 1).

    Args:
        similarity: (N, M) scores, M >= N (the first N columns are the rows' correct ones).
        k: how many of the best columns count, in [1, M].

    Returns:
        the recall, a float in [0, 1].

    Raises:
        ValueError: not a float matrix with M >= N >= 1, a NaN in it, or a k out of range.
    """
    if not torch.is_tensor(similarity) or similarity.ndim != 2 or not similarity.dtype.is_floating_point:
        found = (
            (tuple(similarity.shape), similarity.dtype) if torch.is_tensor(similarity) else type(similarity)
        )
        raise ValueError(f"similarity must be a float tensor (N, M), got {found}")
    n, m = similarity.shape
    if n < 1 or m < n:
        raise ValueError(
            f"similarity must be (N, M) with M >= N >= 1 (row i's match is column i), got {(n, m)}"
        )
    if torch.isnan(similarity).any():
        raise ValueError("similarity must not contain NaN")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= m:
        raise ValueError(f"k must be an int in [1, {m}], got {k!r}")
    correct = similarity.diagonal()[:, None]
    at_least = (similarity >= correct).sum(dim=1) - 1  # other columns scoring at least as high
    return float((at_least < k).double().mean())


# ---------------------------------------------------------------- prompts of the text-to-image models
def check_prompts(prompts, tokenizer: Tokenizer) -> list:
    """``prompts`` as a list of non-empty str that ``tokenizer`` can encode, each with its
    whitespace collapsed.

    Raises:
        ValueError: not a non-empty list of str, an empty prompt, or the tokenizer's errors (a
            word outside the vocabulary, naming it; a prompt too long for the context).
    """
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError(f"prompts must be a non-empty list of str, got {prompts!r}")
    for prompt in prompts:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"a prompt must be a non-empty str, got {prompt!r}")
    tokenizer.encode(list(prompts))  # its own errors: an unknown word, a prompt too long
    return [" ".join(p.split()) for p in prompts]


def read_prompts(path) -> list:
    """The prompts of a text file, one per line (UTF-8; blank lines skipped).

    Raises:
        ValueError: the file does not exist, cannot be read, or holds no prompt.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--prompts {str(path)!r}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"--prompts {str(path)!r}: cannot be read ({err})") from None
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"--prompts {str(path)!r}: the file holds no prompt")
    return prompts


def prompts_from(name: str, prompt, path) -> list:
    """The prompts of the command line's ``--prompt TEXT`` or ``--prompts FILE`` (exactly one
    given) for the text-to-image model ``name``, checked against the scenes' vocabulary before
    anything is loaded or trained.

    Raises:
        ValueError: both or neither given; :func:`read_prompts`'s and :func:`check_prompts`'s errors.
    """
    if (prompt is None) == (path is None):
        raise ValueError(
            f"{name!r} needs one of --prompt TEXT or --prompts FILE, got "
            f"{'both' if prompt is not None else 'neither'}"
        )
    prompts = [prompt] if prompt is not None else read_prompts(path)
    return check_prompts(prompts, Tokenizer.for_scenes())
