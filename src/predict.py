"""Sentiment of raw reviews with a trained model.

    python -m src.predict "A wonderful film" "Two hours I will never get back"
    python -m src.predict --file reviews.txt            # one review per line; `-` or no input: stdin
    python -m src.predict --model models:/imdb-lstm@champion "A wonderful film"

Prints one line per review: label, positive probability, the review's start. The model is the
pipeline's (models/model.keras with the tokenize stage's vocabulary) unless --model names an
MLflow model. Either way `ReviewClassifier` does the work, with the tokenizer and padding the
model was trained with and length-bucketed batches, so 25,000 reviews take seconds.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from pathlib import Path

from src.lib import config, tracking
from src.lib.errors import UserError, command, first_line
from src.lib.evaluation import THRESHOLD
from src.lib.model_folder import ReviewClassifier


def pipeline_classifier(cfg: config.Config) -> ReviewClassifier:
    return ReviewClassifier.from_folder(cfg.paths.model)


def registry_classifier(uri: str) -> ReviewClassifier:
    """The classifier inside an MLflow model (`models:/imdb-lstm@champion`, `runs:/<id>/model`)."""
    import mlflow

    store = tracking.require_store()
    mlflow.set_tracking_uri(store)
    try:
        loaded = mlflow.pyfunc.load_model(uri)
    except Exception as exc:  # unknown name, alias or run; unreachable store
        raise UserError(f"cannot load model {uri} from {store}: {first_line(exc)}") from None
    return loaded.unwrap_python_model().classifier


def read_reviews(source) -> list[str]:
    """One review per line: a line ends at \\n only (a \\r before it is dropped), so form feeds,
    U+2028 and the like stay inside their review. Bytes that are not UTF-8 are replaced, as in
    the tokenize stage."""
    lines = source.read().decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":
        lines.pop()  # the end of the last line, not an empty review after it
    return [line.removesuffix("\r") for line in lines]


def shown(review: str, width: int = 60) -> str:
    """The start of a review as one terminal line: runs of spaces and tabs as one space, control
    and line-separator characters escaped (a form feed shows as \\x0c, U+2028 as \\u2028)."""
    chars = (
        " "
        if c in " \t"
        else c.encode("unicode_escape").decode("ascii")
        if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
        else c
        for c in review
    )
    start = " ".join(part for part in "".join(chars).split(" ") if part)
    return start[:width] + ("..." if len(start) > width else "")


def _parse(argv: list[str]):
    parser = argparse.ArgumentParser(prog="python -m src.predict", description=__doc__.splitlines()[0])
    parser.add_argument("reviews", nargs="*", help="reviews to classify (default: --file or stdin)")
    parser.add_argument("--file", help="a file of reviews, one per line; - for stdin")
    parser.add_argument("--model", help="an MLflow model URI (default: the pipeline's model)")
    config.add_arguments(parser)  # the pipeline's paths and padding
    return parser.parse_args(argv)


@command
def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.reviews and args.file:
        raise UserError("give reviews as arguments or with --file, not both")
    if args.reviews:
        reviews = args.reviews
    elif args.file and args.file != "-":
        if not Path(args.file).is_file():
            raise UserError(f"{args.file} not found")
        with open(args.file, "rb") as f:
            reviews = read_reviews(f)
    else:
        reviews = read_reviews(sys.stdin.buffer)
    # A blank line is no review: it is skipped, and said so, rather than scored as one.
    blank = [i for i, review in enumerate(reviews, 1) if not review.strip()]
    reviews = [review for review in reviews if review.strip()]
    if args.model:
        classifier = registry_classifier(args.model)
    else:
        classifier = pipeline_classifier(config.from_args(args))
    probabilities = classifier.predict_proba(reviews)
    for review, p in zip(reviews, probabilities):
        label = "pos" if p >= THRESHOLD else "neg"
        sys.stdout.write(f"{label}\t{p:.4f}\t{shown(review)}\n")
    if blank:
        print(
            f"skipped {len(blank)} blank line(s): {', '.join(map(str, blank[:10]))}{' ...' if len(blank) > 10 else ''}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
