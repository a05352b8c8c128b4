"""DVC stage `tokenize`: reviews -> vocabulary and unpadded token ids per split.

The validation split is carved from the training reviews (seeded, stratified by label;
`data.val_split` says how) before the vocabulary is counted, so neither validation nor test
text shapes the vocabulary. The archive's unlabeled reviews become the `unsup` split (label -1),
without those of a validation movie: what virtual adversarial training reads
(train.adversarial=vat); empty when the archive has none.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from src.lib import config
from src.lib.artifacts import atomic_path
from src.lib.data import SPLITS, UNLABELED, save_ragged, split_reviews
from src.lib.errors import command
from src.lib.text import VOCAB_FILE, Vocabulary


def tokenize(cfg: config.Config) -> dict:
    splits, movies = split_reviews(cfg, unlabeled=True)
    vocab = Vocabulary.build((text for text, _, _ in splits["train"]), cfg.data.num_words)
    stats = {"vocab_size": vocab.size, "val_split": cfg.data.val_split}
    if movies:
        stats["movies"] = movies
    with atomic_path(cfg.paths.tokens, directory=True) as tmp:
        vocab.save(tmp / VOCAB_FILE)
        for name, rows in splits.items():
            sequences = [vocab.encode(text) for text, _, _ in rows]
            save_ragged(tmp / f"{name}.npz", sequences, [label for _, label, _ in rows], [i for _, _, i in rows])
            lengths = np.array([len(s) for s in sequences])
            stats[name] = {
                "reviews": len(rows),
                "median_tokens": float(np.median(lengths)) if len(rows) else None,
                "empty": int((lengths == 0).sum()),
            }
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


@command
def main(argv: list[str] | None = None) -> None:
    cfg = config.from_argv(sys.argv[1:] if argv is None else argv, usage=__doc__)
    stats = tokenize(cfg)
    print(
        f"vocabulary of {stats['vocab_size']} ids; "
        + ", ".join(f"{s} {stats[s]['reviews']} reviews" for s in (*SPLITS, UNLABELED))
    )


if __name__ == "__main__":
    main()
