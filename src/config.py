"""`python -m src.config [overrides]`: write params.yaml, composed from conf/ with the given Hydra
overrides, recording them (what DVC stages check params.yaml against: src.lib.config).

    python -m src.config                          # conf/ as it stands
    python -m src.config experiment=lecture12 model.units=64
"""

from __future__ import annotations

import sys

from src.lib import config
from src.lib.artifacts import atomic_write_text
from src.lib.errors import UserError, command


@command
def main(argv: list[str] | None = None) -> None:
    overrides = sys.argv[1:] if argv is None else argv
    if overrides[:1] == ["--params"]:
        raise UserError("python -m src.config writes params.yaml from conf/ and overrides; it reads no --params")
    cfg = config.from_argv(overrides, usage=__doc__)
    atomic_write_text(config.PARAMS_FILE, config.to_yaml(cfg, overrides))
    print(f"wrote {config.PARAMS_FILE}" + (f" (overrides: {' '.join(overrides)})" if overrides else ""))


if __name__ == "__main__":
    main()
