"""The whole pipeline on the real IMDB archive: wall time and peak memory per stage, test accuracy.

    python benchmarks/pipeline.py                          # default config
    python benchmarks/pipeline.py experiment=lecture12     # any Hydra overrides

Runs each stage of dvc.yaml, in order, as its own process in a scratch copy of the outputs
(benchmarks/.work/<name>/), so the project's data, dvc.lock and mlflow.db are untouched.
Peak memory is the stage process's maximum resident set size. Prints a table and writes
benchmarks/results/pipeline-<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The official archive's content without its .feat files; its labeled reviews are byte-identical
# to the labeled-only copy (aclImdb_v1-labeled.tar.gz, sha256 9acc3949...) earlier results used.
SHARED_ARCHIVE = ROOT.parent / "shared" / "data" / "aclImdb_v1-nofeat.tar.gz"
SHARED_SHA256 = "91ab3079f70de8a9697b762bba75c97e4c82d1f1b49e151618e666091fb6a7fc"


def archive_overrides(archive: str, sha256: str) -> list[str]:
    """The config overrides naming the archive (an absolute path: stages may run elsewhere)."""
    return [f"data.url={Path(archive).resolve()}", f"data.sha256={sha256}"]


def write_results(name: str, report: dict) -> Path:
    """benchmarks/results/<name>.json, the file every benchmark's README figures come from."""
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def machine() -> dict:
    """The CPU a figure was measured on: epochs differ about 3x between kinds (AVX-512 or not)."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    return {
        "cpu": model,
        "avx512": " avx512f " in f" {cpuinfo.replace(chr(10), ' ')} ",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run_stage(command: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one stage process; exits if the stage fails."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"stage failed: {' '.join(command)}")
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=lecture12")
    parser.add_argument("--archive", default=str(SHARED_ARCHIVE))
    parser.add_argument("--sha256", default=SHARED_SHA256)
    parser.add_argument("--name", help="results name (default: from the overrides)")
    args = parser.parse_intermixed_args()  # options may come after the overrides
    name = args.name or ("-".join(o.replace("experiment=", "").replace("=", "_") for o in args.overrides) or "default")

    work = ROOT / "benchmarks" / ".work" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "PYTHONPATH": str(ROOT),
    }  # the stages run in the scratch directory, not the project root
    python = sys.executable
    subprocess.run(
        [python, "-m", "src.config", *archive_overrides(args.archive, args.sha256), *args.overrides],
        cwd=work,
        env=env,
        check=True,
    )

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    results = {}
    for stage, spec in stages.items():
        command = spec["cmd"].split()
        command[0] = python if command[0] == "python" else command[0]
        print(f"--- {stage}: {' '.join(command)}", flush=True)
        seconds, peak_mib = run_stage(command, work, env)
        results[stage] = {"seconds": round(seconds, 1), "peak_rss_mib": round(peak_mib)}

    params = yaml.safe_load((work / "params.yaml").read_text())
    metrics = json.loads((work / params["paths"]["reports"] / "metrics.json").read_text())
    history = (work / params["paths"]["reports"] / "history.csv").read_text().splitlines()
    trained = json.loads((work / params["paths"]["model"] / "run.json").read_text())
    tokens = json.loads((work / params["paths"]["tokens"] / "stats.json").read_text())
    baseline_file, blend_file = (work / params["paths"]["reports"] / name for name in ("baseline.json", "blend.json"))
    baseline = json.loads(baseline_file.read_text()) if baseline_file.is_file() else None
    blend = json.loads(blend_file.read_text()) if blend_file.is_file() else None
    report = {
        "name": name,
        "overrides": args.overrides,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "stages": results,
        "total_seconds": round(sum(r["seconds"] for r in results.values()), 1),
        "test": metrics,
        "best_val_accuracy": trained["best_val_accuracy"],
        "baseline": baseline,
        "blend": blend,
        "tokens": tokens,
        "epochs": [dict(zip(history[0].split(","), row.split(","))) for row in history[1:]],
        "params": params,
    }
    out = write_results(f"pipeline-{name}", report)

    print(f"\n{'stage':<10} {'seconds':>8} {'peak MiB':>9}")
    for stage, r in results.items():
        print(f"{stage:<10} {r['seconds']:>8.1f} {r['peak_rss_mib']:>9}")
    print(f"{'total':<10} {report['total_seconds']:>8.1f}")
    print(
        f"test accuracy {metrics['accuracy']:.4f}  ROC AUC {metrics['roc_auc']:.4f}  F1 {metrics['f1']:.4f}  "
        f"validation accuracy {trained['best_val_accuracy']:.4f}"
    )
    if baseline:
        print(
            f"baseline ({params['baseline']['method']}): test accuracy {baseline['accuracy']:.4f}, "
            f"validation accuracy {baseline['val_accuracy']:.4f}"
        )
    if blend:
        print(
            f"blend (LSTM weight {blend['weight']}): test accuracy {blend['accuracy']:.4f}, "
            f"validation accuracy {blend['val_accuracy']:.4f}"
        )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
