"""DVC stage `pad`: unpadded token ids -> fixed-length int32 arrays (data.maxlen, padding, truncating),
for the labeled splits and the unlabeled one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from src.lib import config
from src.lib.artifacts import atomic_path
from src.lib.data import META_FILE, SPLITS, UNLABELED, load_ragged, load_review_ids, padding_settings, save_padded
from src.lib.errors import command
from src.lib.text import pad


def pad_splits(cfg: config.Config) -> None:
    settings = padding_settings(cfg)
    with atomic_path(cfg.paths.padded, directory=True) as tmp:
        for split in (*SPLITS, UNLABELED):
            tokens = Path(cfg.paths.tokens) / f"{split}.npz"
            sequences, labels = load_ragged(tokens)
            save_padded(tmp / f"{split}.npz", pad(sequences, **settings), labels, load_review_ids(tokens))
        (tmp / META_FILE).write_text(json.dumps(settings, indent=2) + "\n")


@command
def main(argv: list[str] | None = None) -> None:
    cfg = config.from_argv(sys.argv[1:] if argv is None else argv, usage=__doc__)
    pad_splits(cfg)
    print(
        f"padded {', '.join(SPLITS)} to {cfg.data.maxlen} tokens ({cfg.data.padding} padding, "
        f"{cfg.data.truncating} truncation) in {cfg.paths.padded}"
    )


if __name__ == "__main__":
    main()
