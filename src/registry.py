"""The MLflow model registry: what the pipeline logs and registers, and who is champion.

    python -m src.registry                     # versions, their aliases and accuracies
    python -m src.registry promote             # the newest pipeline model becomes champion, if it is better
    python -m src.registry promote --version 3
    python -m src.registry promote --require-significant   # only past the paired test on validation

Exit status: 0 when the command did what it says (promote: champion moved), 1 when promote
leaves the champion where it is (not better, or already champion), 2 on an error (no such
version, no challenger, a version without a val_accuracy tag, tracking.registered_model null,
an unusable store), always with one line.

The train stage logs the model as an MLflow model that takes raw review strings
(`src/lib/review_model.py`). The evaluate stage registers it under `tracking.registered_model`
with its validation and test accuracy as version tags, and points the alias `challenger` at it.
`promote` moves `champion` to a version only when its validation accuracy beats the current
champion's: the test set stays out of model choice.
"""

from __future__ import annotations

import argparse
import sys

from src.lib import config, registry
from src.lib.errors import command


@command
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.registry", description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", choices=["show", "promote"], default="show")
    parser.add_argument("--version", help="the version to promote (default: the challenger)")
    parser.add_argument(
        "--require-significant",
        action="store_true",
        help="promote only if it beats the champion on the same validation reviews by the paired "
        "test (McNemar p < 0.05 and a 95%% bootstrap interval above 0)",
    )
    config.add_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    cfg = config.from_args(args)
    if args.action == "show":
        print(registry.versions_table(cfg))
        return
    promoted, message = registry.promote(cfg, args.version, args.require_significant)
    print(message)
    if not promoted:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
