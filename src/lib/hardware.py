"""What a run trains on: TensorFlow's settings for this machine, and the devices said and recorded.

`configure()` runs before TensorFlow is imported (src/__init__.py), and sets, unless the user has:
- `TF_ENABLE_ONEDNN_OPTS=1`: TensorFlow turns its oneDNN CPU kernels on by itself only on CPUs with
  AVX-512 VNNI, BF16 or AMX; elsewhere (AVX2 laptops, many cloud CPUs) it runs its Eigen kernels,
  which train this model's step slower (docs/results.md, "oneDNN").
- `TF_FORCE_GPU_ALLOW_GROWTH=true`: each process takes GPU memory as it needs it, instead of
  nearly all of it at start, so sweep workers and test processes can share one GPU.

The kernels and the CPU change the last digits of a result, so every training run records them
(`run_tags`) beside the devices it trains on, and prints them (`describe`). Where the CUDA wheels
of `.[gpu]` are installed but TensorFlow sees no GPU, `gpu_warning` gives one line with
TensorFlow's own reason, which src.lib.quiet otherwise keeps off the terminal.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
GROWTH_ENV = "TF_FORCE_GPU_ALLOW_GROWTH"
CUDA_WHEEL = re.compile(r"^nvidia-(cudnn|cuda-runtime)-cu\d+$")  # what `tensorflow[and-cuda]` installs


def configure() -> None:
    """oneDNN on and GPU memory on demand for this process and those it starts; a value the user
    set stands. Call before TensorFlow is imported: it reads both once, at start-up."""
    os.environ.setdefault(ONEDNN_ENV, "1")
    os.environ.setdefault(GROWTH_ENV, "true")


@functools.cache
def cpu() -> dict[str, str | bool]:
    """The CPU's model name and whether it has AVX-512 (the kind that changes epoch times 2x)."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        platform.processor() or platform.machine(),
    )
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return {"model": model, "avx512": "avx512f" in flags}


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels in this process (imports TensorFlow)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def gpus() -> list[str]:
    """The GPUs TensorFlow trains on, by name (imports TensorFlow); [] on a CPU-only machine."""
    import tensorflow as tf

    named = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        named.append(f"{device.name.removeprefix('/physical_device:')} ({details.get('device_name', 'GPU')})")
    return named


def cuda_wheels() -> list[str]:
    """The NVIDIA CUDA wheels installed beside TensorFlow (`pip install -e '.[gpu]'`), name and version."""
    return sorted(
        f"{d.metadata['Name']} {d.version}"
        for d in importlib.metadata.distributions()
        if CUDA_WHEEL.match((d.metadata["Name"] or "").lower())
    )


@functools.cache  # once a process: a sweep or a repeat fits many times
def _tensorflow_gpu_messages() -> list[str]:
    """What TensorFlow itself says while it looks for a GPU: a fresh interpreter, its C++ log
    unfiltered (this process has it quieted), the lines about CUDA, drivers and GPUs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMDB_LSTM_")} | {"TF_CPP_MIN_LOG_LEVEL": "0"}
    probe = "import tensorflow as tf; tf.config.list_physical_devices('GPU')"
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
    except subprocess.TimeoutExpired:
        return []
    return [
        re.sub(r"^[IWEF]\d{4} [\d:.]+\s+\d+ ", "", line).strip()
        for line in done.stderr.splitlines()
        if re.search(r"cuda|cudnn|gpu|driver", line, re.I)
    ]


def gpu_warning(visible: list[str]) -> str:
    """One line when the CUDA wheels are installed but no GPU is visible, with TensorFlow's
    reason (its last message about CUDA, drivers or GPUs); '' otherwise."""
    wheels = cuda_wheels()
    if visible or not wheels or os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return ""  # a GPU trains, no CUDA install, or the user hid the GPUs on purpose
    messages = _tensorflow_gpu_messages()
    reason = messages[-1] if messages else "it printed no reason (check `nvidia-smi` and the driver's CUDA version)"
    return (
        f"warning: the CUDA wheels are installed ({wheels[0]}{', ...' if len(wheels) > 1 else ''}) but TensorFlow "
        f"sees no GPU, so this trains on the CPU; TensorFlow says: {reason}"
    )


def describe() -> dict[str, str]:
    """The devices this process trains on and the CPU's kernels, as MLflow tags (imports TensorFlow)."""
    import keras
    import tensorflow as tf

    visible = gpus()
    processor = cpu()
    return {
        "device": ", ".join(visible) if visible else "CPU",
        "cpu": str(processor["model"]),
        "cpu.avx512": "yes" if processor["avx512"] else "no",
        "tensorflow.onednn": "on" if onednn_enabled() else "off",
        "tensorflow.version": tf.__version__,
        "keras.version": keras.__version__,
    }


def announce() -> dict[str, str]:
    """Print what this process trains on (and the warning, if any) and return it as run tags."""
    tags = describe()
    warning = gpu_warning([] if tags["device"] == "CPU" else tags["device"].split(", "))
    if warning:
        print(warning, file=sys.stderr, flush=True)
    avx = "AVX-512" if tags["cpu.avx512"] == "yes" else "no AVX-512"
    print(f"training on {tags['device']} (CPU {tags['cpu']}, {avx}, oneDNN {tags['tensorflow.onednn']})", flush=True)
    return tags
