"""DVC stage `pretrain`: what the classifier starts from, learned from reviews alone.

It reads the training reviews (the training split: never validation or test) and, with
pretrain.unlabeled, the archive's unlabeled reviews (train/unsup), standardized as the tokenize
stage does. With pretrain.method=word2vec, gensim's word2vec (CBOW, one worker thread, so the
same vectors every run) gives each word of the tokenize stage's vocabulary its vector at its
id; a word seen too rarely keeps a random start as a plain Embedding has. With
pretrain.method=lm, an LSTM language model of the classifier's shapes (src.lib.language_model)
gives the Embedding and the LSTM their weights. With pretrain.method=none the stage writes only
its meta.json and the model starts random. An MLflow run tagged `pretrain=<method>` records
what it learned from and how long it took.
"""

from __future__ import annotations

import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from src.lib import config, data, embeddings, language_model, tracking
from src.lib.artifacts import atomic_path
from src.lib.errors import UserError, command
from src.lib.text import FIRST_WORD_ID, VOCAB_FILE, Vocabulary, standardize


def _stable_hash(text: str) -> int:
    """word2vec seeds each word's first vector from a hash of it: Python's own `hash` changes
    from one process to the next, this does not."""
    return zlib.crc32(text.encode("utf-8"))


def pretrain(cfg: config.Config) -> dict:
    out = Path(cfg.paths.pretrained)
    if cfg.pretrain.method == "none":
        with atomic_path(out, directory=True) as tmp:
            embeddings.save(tmp, None, {"method": "none"})
        return {"method": "none"}
    vocabulary_file = Path(cfg.paths.tokens) / VOCAB_FILE
    if not vocabulary_file.is_file():
        raise UserError(f"{vocabulary_file} not found: run the tokenize stage (`dvc repro tokenize`)")
    vocabulary = Vocabulary.load(vocabulary_file)
    splits, _ = data.split_reviews(cfg, test=False)  # never test: its reviews are not read at all
    texts = [text for text, _, _ in splits["train"]]
    unlabeled = data.read_unlabeled(Path(cfg.paths.raw) / "aclImdb" / "train") if cfg.pretrain.unlabeled else []
    p = cfg.pretrain
    run_cfg = replace(cfg, tracking=replace(cfg.tracking, run_name=f"pretrain-{p.method}", registered_model=None))
    with (
        tracking.run(run_cfg, tags=data.source_tags(cfg) | {"pretrain": p.method}),
        atomic_path(out, directory=True) as tmp,
    ):
        import mlflow

        started = time.perf_counter()
        learn = _word2vec if p.method == "word2vec" else _language_model
        vectors, lstm, figures = learn(cfg, vocabulary, texts + unlabeled)
        meta = {
            "method": p.method,
            "labeled_reviews": len(texts),
            "unlabeled_reviews": len(unlabeled),
            "seconds": round(time.perf_counter() - started, 1),
        } | figures
        embeddings.save(tmp, vectors, meta, lstm)
        tracking.log_params(cfg, ("data", "pretrain", "model"))
        mlflow.log_metrics({k: v for k, v in meta.items() if isinstance(v, (int, float))})
        for epoch, loss in enumerate(meta.get("loss", []), start=1):  # the language model's curve
            mlflow.log_metric("lm_loss", loss, step=epoch)
    return meta


def _word2vec(cfg: config.Config, vocabulary: Vocabulary, texts: list[str]) -> tuple[np.ndarray, None, dict]:
    from gensim.models import Word2Vec  # seconds to import: only when the stage trains vectors

    p = cfg.pretrain
    sentences = [standardize(text) for text in texts]
    model = Word2Vec(
        sentences,
        vector_size=cfg.model.embedding_dim,
        window=p.window,
        min_count=p.min_count,
        epochs=p.epochs,
        seed=p.seed,
        workers=1,
        hashfxn=_stable_hash,
    )
    # Rows as a fresh Keras Embedding starts them (uniform +-0.05), then each known word's vector.
    rng = np.random.default_rng(p.seed)
    rows = max(FIRST_WORD_ID + len(vocabulary.words), cfg.data.num_words)  # the Embedding has num_words rows
    vectors = rng.uniform(-0.05, 0.05, (rows, cfg.model.embedding_dim))
    known = [(i, word) for i, word in enumerate(vocabulary.words, start=FIRST_WORD_ID) if word in model.wv]
    for i, word in known:
        vectors[i] = model.wv[word]
    return (
        vectors,
        None,
        {
            "words": sum(len(s) for s in sentences),
            "vocabulary_with_vectors": len(known),
            "vocabulary": len(vocabulary.words),
        },
    )


def _language_model(cfg: config.Config, vocabulary: Vocabulary, texts: list[str]) -> tuple[np.ndarray, list, dict]:
    sequences = [
        data.cut_vocabulary(np.asarray(vocabulary.encode(text), dtype=np.int32), cfg.data.num_words) for text in texts
    ]
    lstm, vectors, figures = language_model.pretrain(cfg, sequences, log=lambda line: print(line, flush=True))
    return vectors, lstm, {"words": sum(len(s) for s in sequences), "vocabulary": len(vocabulary.words)} | figures


@command
def main(argv: list[str] | None = None) -> None:
    cfg = config.from_argv(sys.argv[1:] if argv is None else argv, usage=__doc__)
    meta = pretrain(cfg)
    if meta["method"] == "none":
        print("pretrain.method=none: the Embedding starts random")
    elif meta["method"] == "lm":
        print(
            f"language model on {meta['labeled_reviews']} training and {meta['unlabeled_reviews']} unlabeled reviews "
            f"({meta['words']} words, {meta['windows']} windows) in {meta['seconds']:.0f} s: final loss {meta['loss'][-1]:.4f}"
        )
    else:
        print(
            f"{meta['method']} vectors for {meta['vocabulary_with_vectors']} of {meta['vocabulary']} words, from "
            f"{meta['labeled_reviews']} training and {meta['unlabeled_reviews']} unlabeled reviews "
            f"({meta['words']} words) in {meta['seconds']:.0f} s"
        )


if __name__ == "__main__":
    main()
