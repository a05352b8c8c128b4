"""The README's commands that start a server bind it to loopback."""

from __future__ import annotations

import re

from tests.conftest import PROJECT

SERVER_COMMANDS = ("mlflow ui", "mlflow server", "mlflow models serve", "optuna-dashboard")


def readme_commands() -> list[str]:
    """Every command line in the README's code blocks, continuation lines joined."""
    blocks = re.findall(r"```\n(.*?)```", (PROJECT / "README.md").read_text(), flags=re.S)
    return [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]


def test_every_server_command_in_the_readme_binds_to_loopback():
    servers = [line for line in readme_commands() if any(c in line for c in SERVER_COMMANDS)]
    assert len(servers) >= 4  # the UI, the tracking server, model serving, Optuna's dashboard
    for line in servers:
        assert re.search(r"--host 127\.0\.0\.1\b", line), line
