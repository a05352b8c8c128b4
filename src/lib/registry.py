"""The MLflow model registry: what the pipeline logs and registers, and who is champion.

The train stage logs the model as an MLflow model that takes raw review strings
(`src/lib/review_model.py`). The evaluate stage registers it under `tracking.registered_model`
with its validation and test accuracy as version tags, and points the alias `challenger` at it.
`promote` moves `champion` to a version only when its validation accuracy beats the current
champion's: the test set stays out of model choice. The command is `python -m src.registry`.
"""

from __future__ import annotations

from pathlib import Path

from src.lib import config, predictions, significance, tracking
from src.lib.errors import UserError

ARTIFACT_NAME = "model"  # the logged model's name within its run
CHALLENGER = "challenger"  # alias: the newest model the pipeline registered
CHAMPION = "champion"  # alias: the model to serve; moved only by `promote`
VAL_TAG = "val_accuracy"  # version tags: best validation accuracy of the training run,
TEST_TAG = "test_accuracy"  # and test accuracy from the evaluate stage


def log_model(files: dict[str, Path]) -> str:
    """Log the model directory's files as an MLflow model under the active run; return its URI."""
    import importlib.metadata

    import mlflow

    from src.lib import review_model  # imports MLflow and declares the model (set_model): only when logging

    package = Path(review_model.__file__).parents[1]  # src/: the model's code travels with it
    # Pinned to what trained it; given explicitly because inferring them loads the model twice.
    requirements = [
        f"{name}=={importlib.metadata.version(name)}"
        for name in ("tensorflow", "keras", "mlflow", "numpy", "pandas", "pydantic")
    ]
    # The signature comes from predict's type hints; an input example would load the model once more.
    info = mlflow.pyfunc.log_model(
        name=ARTIFACT_NAME,
        python_model=review_model.__file__,
        code_paths=[str(package)],
        artifacts={role: str(path) for role, path in files.items()},
        pip_requirements=requirements,
    )
    return info.model_uri


def register(cfg: config.Config, model_uri: str, val_accuracy: float, test_accuracy: float):
    """A new version of `tracking.registered_model` with its accuracies; alias challenger."""
    import mlflow

    name = cfg.tracking.registered_model
    version = mlflow.register_model(
        model_uri, name, tags={VAL_TAG: f"{val_accuracy:.6f}", TEST_TAG: f"{test_accuracy:.6f}"}
    )
    mlflow.MlflowClient().set_registered_model_alias(name, CHALLENGER, version.version)
    return version


def _client(cfg: config.Config):
    client, _ = tracking.connect(cfg)
    return client


def _version(client, name: str, *, alias: str | None = None, number: str | None = None):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, number)
    except MlflowException:
        return None


def _val_accuracy(version, name: str) -> float:
    try:
        return float(version.tags[VAL_TAG])
    except (KeyError, ValueError):
        raise UserError(
            f"version {version.version} of {name} has no numeric {VAL_TAG} tag (registered outside the "
            f"pipeline?): set one (`MlflowClient().set_model_version_tag`) or promote another version"
        ) from None


def promote(cfg: config.Config, number: str | None = None, require_significant: bool = False) -> tuple[bool, str]:
    """Move `champion` to version `number` (default: the challenger) if its validation accuracy
    beats the champion's; with require_significant, only if it beats it on the same validation
    reviews by the paired test (src.significance). Returns (promoted, one line saying what happened)."""
    name = _registered_name(cfg)
    client = _client(cfg)
    candidate = _version(client, name, number=number) if number else _version(client, name, alias=CHALLENGER)
    if candidate is None:
        if number:
            raise UserError(
                f"registered model {name} has no version {number} in {tracking.tracking_uri()}: "
                "`python -m src.registry` lists its versions"
            )
        raise UserError(
            f"registered model {name} has no version with alias {CHALLENGER} in "
            f"{tracking.tracking_uri()}: run `dvc repro` first"
        )
    champion = _version(client, name, alias=CHAMPION)
    if champion is not None and str(champion.version) == str(candidate.version):
        return False, f"version {candidate.version} already is {CHAMPION}"
    val = _val_accuracy(candidate, name)
    if require_significant and champion is not None:
        compared = significance.compare(
            predictions.from_run(champion.run_id, "val"), predictions.from_run(candidate.run_id, "val")
        )
        evidence = (
            f"{significance.summary(compared)} over version {champion.version} on {compared.reviews} validation reviews"
        )
        if compared.verdict != "B is better":
            return False, (
                f"{CHAMPION} stays version {champion.version}: version {candidate.version} is not "
                f"significantly better ({evidence})"
            )
        client.set_registered_model_alias(name, CHAMPION, candidate.version)
        return True, f"{CHAMPION} is now version {candidate.version} ({evidence})"
    if champion is not None and val <= (champion_val := _val_accuracy(champion, name)):
        return False, (
            f"{CHAMPION} stays version {champion.version} (val accuracy {champion_val:.4f}): "
            f"version {candidate.version} has {val:.4f}"
        )
    client.set_registered_model_alias(name, CHAMPION, candidate.version)
    before = f"version {champion.version}" if champion else "none"
    return True, f"{CHAMPION} is now version {candidate.version} (val accuracy {val:.4f}; was {before})"


def _registered_name(cfg: config.Config) -> str:
    if not cfg.tracking.registered_model:
        raise UserError(
            "tracking.registered_model is null, so the pipeline registers no model: "
            "set it (conf/tracking/mlflow.yaml, then `python -m src.config`) to use the registry"
        )
    return cfg.tracking.registered_model


def versions_table(cfg: config.Config) -> str:
    name = _registered_name(cfg)
    client = _client(cfg)
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    if not versions:
        return f"no versions of {name} in {tracking.tracking_uri()}"
    aliases = {}  # search results leave a version's aliases out; the registered model has them all
    for alias, number in client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(number), []).append(alias)
    rows = [f"{'version':>7}  {'val acc':>7}  {'test acc':>8}  {'aliases':<20}  run"]
    for v in versions:
        rows.append(
            f"{v.version:>7}  {float(v.tags.get(VAL_TAG, 'nan')):7.4f}  {float(v.tags.get(TEST_TAG, 'nan')):8.4f}  "
            f"{','.join(sorted(aliases.get(str(v.version), []))) or '-':<20}  {v.run_id}"
        )
    return "\n".join(rows)
