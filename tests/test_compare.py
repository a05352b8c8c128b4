"""Is B better than A: paired bootstrap intervals and McNemar's test for two runs, the two-level
bootstrap for two configurations of several runs, and the compare command, on known answers and
on a tiny pipeline's real runs."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from src.lib import config, predictions, significance
from src.lib.errors import UserError
from src.lib.predictions import Predictions
from src.stages import evaluate, train
from tests.conftest import run_main


def synthetic(n: int = 2000, errors: int = 400, seed: int = 0) -> Predictions:
    """n reviews, half positive, of which a model gets exactly `errors` wrong."""
    rng = np.random.default_rng(seed)
    label = np.r_[np.zeros(n // 2), np.ones(n // 2)].astype(np.int8)
    confidence = rng.uniform(0.55, 1.0, n)
    right = np.ones(n, dtype=bool)
    right[rng.choice(n, errors, replace=False)] = False
    p_true_class = np.where(right, confidence, 1 - confidence)
    probability = np.where(label == 1, p_true_class, 1 - p_true_class).astype(np.float32)
    return Predictions(probability, label, np.arange(n, dtype=np.int32))


def fixing(a: Predictions, fixed: int) -> Predictions:
    """A copy of a that gets `fixed` of a's errors right, and nothing else different."""
    wrong = np.flatnonzero((a.probability >= 0.5) != a.label)[:fixed]
    probability = a.probability.copy()
    probability[wrong] = np.where(a.label[wrong] == 1, 0.9, 0.1)
    return Predictions(probability, a.label, a.review_id)


def test_identical_predictions_differ_by_exactly_zero_with_p_one():
    a = synthetic()
    c = significance.compare(a, a)
    assert c.accuracy_difference == 0 and c.accuracy_ci == (0.0, 0.0)
    assert c.mcnemar_p == 1.0 and c.only_a_right == c.only_b_right == 0
    assert c.auc_difference == 0 and c.auc_ci == (0.0, 0.0)
    assert c.verdict == significance.NO_DIFFERENCE


def test_fixing_known_errors_gives_an_interval_around_the_true_gain():
    a = synthetic()
    b = fixing(a, 60)  # 60 of 2000 reviews: +3 points exactly
    c = significance.compare(a, b)
    assert c.accuracy_difference == pytest.approx(0.03)
    low, high = c.accuracy_ci
    assert 0 < low < 0.03 < high, c.accuracy_ci  # contains the truth, excludes 0
    assert (c.only_a_right, c.only_b_right) == (0, 60) and c.mcnemar_p < 1e-15
    assert c.verdict == "B is better"
    assert significance.compare(b, a).verdict == "A is better"
    # The bootstrap is seeded: the same inputs, the same interval; another seed, a near one.
    assert significance.compare(a, b).accuracy_ci == c.accuracy_ci
    assert significance.compare(a, b, seed=1).accuracy_ci == pytest.approx(c.accuracy_ci, abs=0.004)


def test_a_gain_within_the_noise_is_no_detectable_difference():
    a = synthetic()
    b = fixing(a, 3)  # 0.15 points
    c = significance.compare(a, b)
    assert c.accuracy_ci[0] <= 0 and c.mcnemar_p > 0.05 and c.verdict == significance.NO_DIFFERENCE


def test_resampled_auc_is_the_weighted_auc_of_each_resample_ties_included():
    a, b = synthetic(200, 40, seed=1), synthetic(200, 30, seed=2)
    a = Predictions(np.round(a.probability, 1), a.label, a.review_id)  # many tied scores
    auc = significance._ResampledAuc(a.label.astype(bool), a.probability, b.probability)
    counts = significance._resample_counts(np.random.default_rng(3), 5, 200)
    resampled_a, resampled_b = auc(counts)
    for row in range(5):
        weights = np.empty(200)
        weights[auc.layout] = counts[row]  # a resample is a row, over the reviews in the AUC's layout
        assert resampled_a[row] == pytest.approx(roc_auc_score(a.label, a.probability, sample_weight=weights))
        assert resampled_b[row] == pytest.approx(roc_auc_score(b.label, b.probability, sample_weight=weights))
    c = significance.compare(a, b)
    assert c.auc_a == pytest.approx(roc_auc_score(a.label, a.probability))
    assert c.auc_b - c.auc_a == pytest.approx(c.auc_difference)


def test_one_run_per_side_gives_the_numbers_of_the_forked_bootstrap_it_replaces():
    """The draws are the same streams, now drawn in one process: the intervals are the ones the
    earlier worker-pool bootstrap printed for these inputs (measured with it at c849631)."""
    a = synthetic()
    c = significance.compare(a, fixing(a, 60))
    assert c.accuracy_ci == (0.02250000089406967, 0.03799999877810478)
    assert c.auc_ci == (0.025190444535782203, 0.043873769822422005)
    c = significance.compare(synthetic(2000, 400, seed=1), synthetic(2000, 380, seed=2))
    assert c.accuracy_ci == (-0.013500000350177288, 0.03500000014901161)
    assert c.auc_ci == (-0.023951542099487813, 0.03325226546639139) and c.mcnemar_p == pytest.approx(0.4402452847847818)


def runs(errors: list[int], seeds: list[int], n: int = 10_000) -> list[Predictions]:
    """One fabricated run per (errors, seed): the same seed, wrong on the same reviews."""
    return [synthetic(n, e, seed=s) for e, s in zip(errors, seeds)]


def test_runs_that_merely_disagree_with_each_other_are_no_better_though_their_ensemble_is():
    a = runs([1000] * 3, [0, 0, 0])  # three runs of 0.90, wrong on the same reviews
    b = runs([1000] * 3, [1, 2, 3])  # three runs of 0.90, wrong on independent reviews
    c = significance.compare_groups(a, b)
    assert c.accuracies_a == c.accuracies_b == (0.9, 0.9, 0.9) and c.accuracy_difference == 0
    low, high = c.accuracy_ci
    assert low < 0 < high and c.p > 0.5 and c.verdict == significance.NO_DIFFERENCE
    # Averaged, B's runs fix each other's errors: the ensemble gains, and is only reported.
    assert c.ensemble_accuracy_a == 0.9 and c.ensemble_accuracy_b > 0.94
    assert significance.compare(a[0], b[0]).verdict == significance.NO_DIFFERENCE


def test_runs_each_two_points_better_make_b_better_and_the_interval_contains_the_gain():
    c = significance.compare_groups(runs([1000] * 3, [0, 1, 2]), runs([800] * 3, [3, 4, 5]))
    assert c.accuracy_difference == pytest.approx(0.02)
    low, high = c.accuracy_ci
    assert 0 < low < 0.02 < high and c.p < 0.01 and c.verdict == "B is better"
    assert significance.compare_groups(runs([800] * 3, [3, 4, 5]), runs([1000] * 3, [0, 1, 2])).verdict == "A is better"
    # Each run's AUC is scored as if alone; the sides' means are compared.
    assert c.aucs_b[0] == pytest.approx(roc_auc_score(runs([800], [3])[0].label, runs([800], [3])[0].probability))
    assert c.auc_difference == pytest.approx(np.mean(c.aucs_b) - np.mean(c.aucs_a)) and c.auc_ci[0] < c.auc_ci[1]


def test_seeds_that_disagree_more_than_the_sides_do_leave_no_detectable_difference():
    a = runs([1000] * 3, [0, 1, 2])  # 0.90, 0.90, 0.90
    b = runs([1200, 1000, 500], [3, 4, 5])  # 0.88, 0.90, 0.95: a mean of 0.91
    c = significance.compare_groups(a, b)
    assert c.accuracy_difference == pytest.approx(0.01)
    assert c.accuracy_ci[0] < 0 < c.accuracy_ci[1] and c.verdict == significance.NO_DIFFERENCE
    # B's luckiest seed alone is detectably better than a run of A: one seed is a draw, not a result.
    assert significance.compare(a[0], b[2]).verdict == "B is better"
    assert "A has only three seeds; B has only three seeds" in c.seeds_note
    assert significance.few_seeds(1, 5) == (
        "A is a single run, so its seed-to-seed variation is not in the interval: "
        "an interval over so few seeds is coarse, and more seeds per side would "
        "firm it up"
    )
    assert significance.few_seeds(4, 10) == ""


def test_runs_of_no_reviews_are_refused_in_one_line():
    empty = Predictions(np.zeros(0, np.float32), np.zeros(0, np.int8), np.zeros(0, np.int32))
    with pytest.raises(UserError, match="hold no reviews"):
        significance.compare_groups([empty, empty], [empty])


def test_predictions_of_other_reviews_are_refused_in_one_line():
    a = synthetic()
    other = Predictions(a.probability, a.label, a.review_id[::-1].copy())
    with pytest.raises(UserError, match="not evaluated on the same reviews") as err:
        significance.compare(a, other)
    assert "\n" not in str(err.value)


@pytest.fixture
def two_runs(prepared_cfg, tmp_path, monkeypatch):
    """Two evaluated runs of the tiny pipeline, seeds 42 and 43 (the second in the workspace);
    the first as a DVC experiment would tag it."""
    monkeypatch.setenv("DVC_EXP_NAME", "seed-42")
    first = train.train(prepared_cfg)["run_id"]
    evaluate.evaluate(prepared_cfg)
    monkeypatch.delenv("DVC_EXP_NAME")
    second_cfg = replace(prepared_cfg, train=replace(prepared_cfg.train, seed=43, learning_rate=0.005))
    second = train.train(second_cfg)["run_id"]
    evaluate.evaluate(second_cfg)
    params = tmp_path / "params.yaml"
    params.write_text(config.to_yaml(prepared_cfg))
    return first, second, str(params)


def test_compare_command_on_two_real_runs_and_what_it_refuses(two_runs):
    first, second, params = two_runs
    done = run_main("src.compare", first, "workspace", "--params", params, "--resamples", "1000")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"A: {first}" and lines[1].startswith(f"B: workspace (run {second[:8]})")
    assert "test (32 reviews):" in lines and "validation (8 reviews):" in lines
    assert sum(line.startswith("  verdict: ") for line in lines) == 2

    as_json = json.loads(
        run_main(
            "src.compare",
            "seed-42",
            "models:/imdb-lstm@challenger",
            "--json",
            "--params",
            params,
            "--resamples",
            "1000",
        ).stdout
    )
    test = as_json["splits"]["test"]
    a, b = (
        predictions.load(mlflow.artifacts.download_artifacts(run_id=r, artifact_path="predictions/test.npz"))
        for r in (first, second)
    )
    assert test["accuracy"]["a"] == pytest.approx(a.accuracy) and test["accuracy"]["b"] == pytest.approx(b.accuracy)
    assert test["accuracy"]["difference"] == pytest.approx(b.accuracy - a.accuracy)
    assert test["verdict"] in ("B is better", "A is better", significance.NO_DIFFERENCE)
    tags = mlflow.MlflowClient().get_run(second).data.tags  # logged on B's run, naming A
    assert tags["compare.against"].startswith("seed-42") and f"compare.{first[:8]}.test" in tags

    # Several runs on a side: configurations, compared by their mean run over seeds and reviews.
    both = f"{first},models:/imdb-lstm/2"
    several = json.loads(run_main("src.compare", both, both, "--json", "--params", params, "--resamples", "200").stdout)
    test = several["splits"]["test"]
    runs = test["runs"]["a"]
    assert runs["accuracies"] == pytest.approx([a.accuracy, b.accuracy])
    assert runs["accuracy_sd"] == pytest.approx(np.std([a.accuracy, b.accuracy], ddof=1))
    assert test["accuracy"]["a"] == pytest.approx(np.mean([a.accuracy, b.accuracy]))
    assert test["accuracy"]["difference"] == 0 and "mcnemar" not in test
    assert test["verdict"] == significance.NO_DIFFERENCE and "two seeds" in test["seeds_note"]
    text = run_main("src.compare", first, both, "--params", params, "--resamples", "200").stdout
    assert (
        "  seeds     A is a single run, so its seed-to-seed variation is not in the interval; B has only two seeds"
        in text
    )
    assert "over seeds and reviews (two-level bootstrap)" in text and "McNemar" not in text
    assert "  ensemble  each side's runs averaged, an ensemble and not a run of its configuration: " in text

    # What cannot be compared is one line, exit status 2.
    for reference, message in (
        ("no-such-experiment", "is not a run id, a models:/ URI"),
        ("models:/imdb-lstm/9", "cannot find models:/imdb-lstm/9"),
    ):
        done = run_main("src.compare", first, reference, "--params", params)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith("error: ") and message in done.stderr


@pytest.mark.slow
def test_repeat_trains_seeds_as_children_of_one_parent_with_mean_and_sd(prepared_cfg, tmp_path, isolated_tracking):
    from tests.conftest import TINY_OVERRIDES, output_paths

    overrides = (
        TINY_OVERRIDES
        + output_paths(tmp_path / "out")
        + [f"data.url={prepared_cfg.data.url}", f"data.sha256={prepared_cfg.data.sha256}"]
    )
    assert config.compose(overrides) == prepared_cfg
    done = run_main("src.repeat", "--seeds", "2", *overrides)
    assert done.returncode == 0, done.stderr
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("imdb-lstm")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = sorted(
        (r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
        key=lambda r: int(r.data.tags["repeat.index"]),
    )
    assert [c.data.params["train.seed"] for c in children] == ["42", "43"]  # ensemble 1: consecutive seeds
    assert all(c.info.status == "FINISHED" for c in children + [parent])
    val = [c.data.metrics["best_val_accuracy"] for c in children]
    test = [c.data.metrics["test_accuracy"] for c in children]
    assert parent.data.metrics["val_accuracy_mean"] == pytest.approx(np.mean(val))
    assert parent.data.metrics["test_accuracy_sd"] == pytest.approx(np.std(test, ddof=1))
    assert done.stdout.splitlines()[-1] == "runs: " + ",".join(c.info.run_id for c in children)
    # The pipeline's own outputs and the registry are untouched.
    assert not Path(prepared_cfg.paths.model).exists() and not client.search_registered_models()
    refused = run_main("src.repeat", "--seeds", "1")
    assert (
        refused.returncode == 2
        and refused.stderr.strip() == "error: --seeds must be >= 2 for a standard deviation, got 1"
    )


def test_the_sweep_tests_its_best_trial_against_the_baseline_on_validation_predictions(tiny_cfg, monkeypatch):
    """Also: in a process whose TensorFlow threads run, as the sweep's is, nothing forks (a fork
    there can deadlock the child)."""
    from types import SimpleNamespace

    import tensorflow as tf

    from src import sweep
    from src.lib import tracking

    assert float(tf.reduce_sum(tf.ones((64, 64)) @ tf.ones((64, 64)))) == 64.0**3  # its thread pools are up

    def no_fork():
        raise AssertionError("the comparison forked a process that holds TensorFlow")

    monkeypatch.setattr(os, "fork", no_fork)
    monkeypatch.setattr(os, "forkpty", no_fork)

    base = synthetic(400, 80)
    trials = []
    for probability in (base.probability, fixing(base, 40).probability):  # the best fixes 40 of 80 errors
        with tracking.run(tiny_cfg) as active:
            predictions.log_to_active_run("val", Predictions(probability, base.label, base.review_id))
        trials.append(SimpleNamespace(user_attrs={"mlflow_run_id": active.info.run_id}))
    with tracking.run(tiny_cfg) as parent:
        pass
    line = sweep.baseline_test(*trials, parent.info.run_id)
    assert line.startswith("; paired on 400 validation reviews: B - A +10.00 points, 95% CI [+")
    assert "McNemar p = " in line and ": the best trial is better (the best was chosen on these reviews" in line
    assert mlflow.MlflowClient().get_run(parent.info.run_id).data.tags["baseline_test"].startswith("paired on 400")
    assert sweep.baseline_test(SimpleNamespace(user_attrs={}), trials[1], parent.info.run_id) == ""
    assert "tensorflow" in sys.modules
