"""Is B better than A? Two runs, or two configurations (each several runs), compared review by review.

    python -m src.compare A B                 # e.g. a run id against the workspace's model
    python -m src.compare A1,A2,A3 B1,B2,B3   # two configurations, each trained with several seeds
    python -m src.compare A B --json

A and B each name runs: an MLflow run id, a registry reference (`models:/imdb-lstm@champion`,
`models:/imdb-lstm/3`), a DVC experiment name (the MLflow run tagged with it), or `workspace`
(the predictions in reports/predictions/ beside the model in models/). All must have been
evaluated on the same reviews. For the test split and for validation it prints:

- one run per side: each run's accuracy, B - A in points with a 95% paired-bootstrap interval,
  McNemar's exact test, the same for ROC AUC, and a verdict;
- several runs on a side (each a training seed of its configuration): each side's mean
  single-run accuracy and ROC AUC, B - A of the means with a 95% interval over seeds and reviews
  (two-level bootstrap, src.lib.significance) and its verdict, a sentence when a side has three
  seeds or fewer, and each side's runs averaged as an ensemble, shown without a verdict.

The numbers are also tagged on B's runs in MLflow. The exit status is 0 whatever the verdict (2,
with one line, when the runs cannot be compared).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from src.lib import config, model_folder, predictions, significance, tracking
from src.lib.errors import UserError, command, first_line

SPLITS = {"test": "test", "val": "validation"}
WORKSPACE = "workspace"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class Run:
    """One named run's predictions per split, and its MLflow run id when it has one."""

    def __init__(self, reference: str, run_id: str | None, splits: dict[str, predictions.Predictions]):
        self.reference, self.run_id, self.splits = reference, run_id, splits

    @property
    def label(self) -> str:
        if self.run_id and self.run_id not in self.reference:
            return f"{self.reference} (run {self.run_id[:8]})"
        return self.reference


_clients: dict[str, object] = {}  # one client per store for the whole command: opening one is slow


def _client(cfg: config.Config):
    uri = tracking.require_store()
    if uri not in _clients:
        _clients[uri], _ = tracking.connect(cfg)
    return _clients[uri]


def run_id_of(reference: str, cfg: config.Config) -> str:
    """The MLflow run a reference names (not `workspace`)."""
    from mlflow.exceptions import MlflowException

    client = _client(cfg)
    model = MODEL_URI.match(reference)
    try:
        if model:
            version = (
                client.get_model_version_by_alias(model["name"], model["alias"])
                if model["alias"]
                else client.get_model_version(model["name"], model["version"])
            )
            return version.run_id
        if RUN_ID.match(reference):
            return client.get_run(reference).info.run_id
    except MlflowException as exc:
        raise UserError(f"cannot find {reference} in {tracking.tracking_uri()}: {first_line(exc)}") from None
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    found = (
        client.search_runs(
            [experiment.experiment_id],
            f"tags.`dvc.experiment` = '{reference}'",
            order_by=["attributes.start_time DESC"],
        )
        if experiment
        else []
    )
    found = [r for r in found if predictions.DIGEST_TAG.format(split="test") in r.data.tags]
    if not found:
        raise UserError(
            f"{reference} is not a run id, a models:/ URI, `workspace` or a DVC experiment with an "
            f"evaluated run in {tracking.tracking_uri()}"
        )
    return found[0].info.run_id


def load_run(reference: str, cfg: config.Config) -> Run:
    if reference == WORKSPACE:
        folder = Path(cfg.paths.reports) / predictions.DIRECTORY
        trained = Path(cfg.paths.model)
        run_id = model_folder.read_run(trained)["run_id"] if (trained / model_folder.RUN_FILE).is_file() else None
        splits = {split: predictions.load(folder / predictions.file_name(split)) for split in SPLITS}
        return Run(reference, run_id, splits)
    run_id = run_id_of(reference, cfg)
    try:
        return Run(reference, run_id, {split: predictions.from_run(run_id, split) for split in SPLITS})
    except UserError as exc:
        raise UserError(f"{reference}: {exc}") from None


def compare_sides(side_a: list[Run], side_b: list[Run], *, resamples: int, seed: int) -> dict:
    """The comparison of both splits, as the JSON output holds it: run against run when each side
    is one run, configuration against configuration otherwise."""
    result = {"a": [r.label for r in side_a], "b": [r.label for r in side_b], "splits": {}}
    single = len(side_a) == len(side_b) == 1
    for split, name in SPLITS.items():
        a, b = [r.splits[split] for r in side_a], [r.splits[split] for r in side_b]
        try:
            if single:
                entry = significance.compare(a[0], b[0], resamples=resamples, seed=seed).to_dict()
                entry["runs"] = {
                    side: {"accuracy_mean": run.accuracy, "accuracy_sd": 0.0, "accuracies": [run.accuracy]}
                    for side, run in (("a", a[0]), ("b", b[0]))
                }
            else:
                entry = significance.compare_groups(a, b, resamples=resamples, seed=seed).to_dict()
        except UserError as exc:
            raise UserError(f"{name}: {exc}") from None
        result["splits"][split] = entry
    return result


def _points(fraction: float) -> str:
    return f"{100 * fraction:+.2f}"


def _p(p: float, resamples: int) -> str:
    """A bootstrap p of 0 means no resample crossed 0: say how small it can be said to be."""
    return f"{p:.3g}" if p > 0 else f"< {2 / resamples:.1g}"


def format_report(result: dict) -> str:
    lines = [f"A: {', '.join(result['a'])}", f"B: {', '.join(result['b'])}"]
    for split, entry in result["splits"].items():
        acc, auc = entry["accuracy"], entry["roc_auc"]
        lines.append(f"{SPLITS[split]} ({entry['reviews']} reviews):")
        if "mcnemar" in entry:
            mc = entry["mcnemar"]
            lines.append(
                f"  accuracy  A {acc['a']:.4f}  B {acc['b']:.4f}  B - A {_points(acc['difference'])} points, "
                f"95% CI [{_points(acc['ci95'][0])}, {_points(acc['ci95'][1])}]; McNemar p = {mc['p']:.3g} "
                f"(A alone right {mc['only_a_right']}, B alone right {mc['only_b_right']})"
            )
            lines.append(
                f"  ROC AUC   A {auc['a']:.4f}  B {auc['b']:.4f}  B - A {auc['difference']:+.4f}, "
                f"95% CI [{auc['ci95'][0]:+.4f}, {auc['ci95'][1]:+.4f}]"
            )
        else:
            runs, ensemble = entry["runs"], entry["ensemble"]
            lines.append(
                "  runs      "
                + "  ".join(
                    f"{side.upper()} {r['accuracy_mean']:.4f} +- {r['accuracy_sd']:.4f} ({len(r['accuracies'])} "
                    f"run{'s' if len(r['accuracies']) > 1 else ''})"
                    for side, r in runs.items()
                )
            )
            lines.append(
                f"  accuracy  mean run: A {acc['a']:.4f}  B {acc['b']:.4f}  B - A {_points(acc['difference'])} "
                f"points, 95% CI [{_points(acc['ci95'][0])}, {_points(acc['ci95'][1])}] over seeds and reviews "
                f"(two-level bootstrap), p = {_p(acc['p'], entry['bootstrap']['resamples'])}"
            )
            lines.append(
                f"  ROC AUC   mean run: A {auc['a']:.4f}  B {auc['b']:.4f}  B - A {auc['difference']:+.4f}, "
                f"95% CI [{auc['ci95'][0]:+.4f}, {auc['ci95'][1]:+.4f}]"
            )
            if entry["seeds_note"]:
                lines.append(f"  seeds     {entry['seeds_note']}")
            lines.append(
                f"  ensemble  each side's runs averaged, an ensemble and not a run of its configuration: "
                f"A {ensemble['a']:.4f}  B {ensemble['b']:.4f}  B - A {_points(ensemble['difference'])} points "
                f"(no verdict: averaging rewards runs that err on different reviews)"
            )
        lines.append(f"  verdict: {entry['verdict']}")
    return "\n".join(lines)


def log_on_b(cfg: config.Config, side_a: list[Run], side_b: list[Run], result: dict) -> None:
    """Tag the comparison on each of B's MLflow runs, naming A, so the UI shows it."""
    _client(cfg)
    against = "_".join(r.run_id[:8] if r.run_id else r.reference for r in side_a)
    tags = {}
    for split, entry in result["splits"].items():
        acc, low, high = entry["accuracy"], *entry["accuracy"]["ci95"]
        test = (
            f"McNemar p={entry['mcnemar']['p']:.3g}"
            if "mcnemar" in entry
            else f"mean run over seeds and reviews, p={_p(acc['p'], entry['bootstrap']['resamples'])}"
        )
        tags[f"compare.{against}.{split}"] = (
            f"{_points(acc['difference'])} points [{_points(low)}, {_points(high)}], {test}: {entry['verdict']}"
        )
    tags["compare.against"] = ", ".join(result["a"])
    for run in side_b:
        if run.run_id:
            tracking.log_to_run(run.run_id, tags=tags)


def _parse(argv: list[str]):
    parser = argparse.ArgumentParser(
        prog="python -m src.compare",
        description=__doc__.splitlines()[0],
        epilog="example: python -m src.compare models:/imdb-lstm@champion workspace",
    )
    parser.add_argument("a", help="the baseline: run references, comma-separated")
    parser.add_argument("b", help="the challenger: run references, comma-separated")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument("--resamples", type=int, default=significance.RESAMPLES, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=significance.SEED, help="bootstrap seed")
    config.add_arguments(parser)
    return parser.parse_args(argv)


@command
def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.resamples < 100:
        raise UserError(f"--resamples must be >= 100 for a 95% interval, got {args.resamples}")
    cfg = config.from_args(args)
    side_a = [load_run(reference, cfg) for reference in args.a.split(",")]
    side_b = [load_run(reference, cfg) for reference in args.b.split(",")]
    result = compare_sides(side_a, side_b, resamples=args.resamples, seed=args.seed)
    if any(r.run_id for r in side_b):
        log_on_b(cfg, side_a, side_b, result)
    print(json.dumps(result, indent=2) if args.json else format_report(result))


if __name__ == "__main__":
    main()
