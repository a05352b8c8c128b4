"""The one text standardization and tokenizer, shared by training, evaluation and prediction.

Ids: 0 pads, 1 stands for any word outside the vocabulary, words start at 2 in order of
training-set frequency. A vocabulary of `num_words` ids therefore holds num_words - 2 words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

VOCAB_FILE = "vocab.txt"  # one word per line, id 2 first; the tokenize stage writes it beside the ids
PAD_ID = 0
OOV_ID = 1
FIRST_WORD_ID = 2

_HTML_TAG = re.compile(r"<[^>]*>")  # IMDB reviews carry <br /> line breaks
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")  # letters/digits in any script; keeps "don't" whole


def standardize(text: str) -> list[str]:
    """Lower-case words of a review, markup and punctuation dropped."""
    return _WORD.findall(_HTML_TAG.sub(" ", text.lower()))


class Vocabulary:
    def __init__(self, words: list[str]):
        self.words = words
        self._ids = {word: i for i, word in enumerate(words, start=FIRST_WORD_ID)}

    @classmethod
    def build(cls, texts: Iterable[str], num_words: int) -> Vocabulary:
        """The num_words - 2 most frequent words; ties broken alphabetically so it is stable."""
        counts = Counter()
        for text in texts:
            counts.update(standardize(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls([word for word, _ in ranked[: num_words - FIRST_WORD_ID]])

    @property
    def size(self) -> int:
        """Number of ids, padding and unknown included (the Embedding's input_dim)."""
        return len(self.words) + FIRST_WORD_ID

    def encode(self, text: str) -> list[int]:
        ids = self._ids
        return [ids.get(word, OOV_ID) for word in standardize(text)]

    def save(self, path: str | Path) -> None:
        Path(path).write_text("".join(f"{word}\n" for word in self.words), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        return cls(Path(path).read_text(encoding="utf-8").splitlines())


EMPTY_REVIEW = (OOV_ID,)  # what a review without words is fed as: one unknown word, never a row of padding


def pad(sequences: list[np.ndarray], maxlen: int, padding: str, truncating: str) -> np.ndarray:
    """Fixed-length int32 matrix: Keras' pad_sequences semantics, without its float default.
    A review without words becomes one unknown word: a row that is all padding is fully masked,
    which cuDNN's LSTM on a GPU refuses."""
    out = np.full((len(sequences), maxlen), PAD_ID, dtype=np.int32)
    for row, seq in enumerate(sequences):
        seq = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        if len(seq) == 0:
            seq = EMPTY_REVIEW
        if padding == "pre":
            out[row, maxlen - len(seq) :] = seq
        else:
            out[row, : len(seq)] = seq
    return out
