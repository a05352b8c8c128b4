"""download: verified, extracted with the data filter, hostile or broken archives refused."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import pytest

from src import download
from src.errors import command
from tests.conftest import review_files, sha256, write_archive


@command
def download_command(cfg):
    """The stage's main() minus argument parsing: same error handling, config given."""
    download.download(cfg)


def run_download(cfg, capsys) -> tuple[int, list[str]]:
    """Exit status and stderr lines of the stage's command."""
    try:
        download_command(cfg)
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err.strip().splitlines()


def assert_refused(cfg, capsys, message: str):
    status, err = run_download(cfg, capsys)
    assert status == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    raw = Path(cfg.paths.raw)
    assert not raw.exists(), "a refused archive must leave no output"
    assert not [p for p in raw.parent.iterdir() if p.name.startswith(f".{raw.name}")], "temporary output left behind"


def use_archive(monkeypatch, path: Path, checksum: str | None = None):
    monkeypatch.setenv("IMDB_URL", str(path))
    monkeypatch.setenv("IMDB_SHA256", checksum or sha256(path))


def test_extracts_labeled_reviews_and_ignores_the_rest(tmp_path, tiny_cfg, monkeypatch):
    files = review_files() | {
        "aclImdb/train/unsup/0_0.txt": b"unlabeled",
        "aclImdb/train/labeledBow.feat": b"0 0:1",
        "aclImdb/train/urls_pos.txt": b"http://example.com",
        "aclImdb/imdb.vocab": b"the\n",
    }
    archive = tmp_path / "full.tar.gz"
    use_archive(monkeypatch, archive, write_archive(archive, files))
    counts = download.download(tiny_cfg)
    assert counts == {"train/pos": 16, "train/neg": 16, "test/pos": 16, "test/neg": 16}
    raw = Path(tiny_cfg.paths.raw)
    assert (raw / "aclImdb/train/pos/0_7.txt").read_bytes().startswith(b"a wonderful film")
    assert not (raw / "aclImdb/train/unsup").exists()
    assert not (raw / "aclImdb/train/labeledBow.feat").exists()
    source = json.loads((raw / download.SOURCE_FILE).read_text())
    assert source["sha256"] == sha256(archive)


def test_file_url_is_accepted(tmp_path, tiny_cfg, tiny_archive, monkeypatch):
    monkeypatch.setenv("IMDB_URL", tiny_archive.as_uri())
    assert sum(download.download(tiny_cfg).values()) == 64


def test_http_url_is_downloaded(tmp_path, tiny_cfg, tiny_archive, monkeypatch):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tiny_archive.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("IMDB_URL", f"http://127.0.0.1:{server.server_port}/{tiny_archive.name}")
        assert sum(download.download(tiny_cfg).values()) == 64
    finally:
        server.shutdown()
    assert not list(Path(tiny_cfg.paths.raw).glob("*.tar.gz")), "the downloaded archive is not kept"


def test_wrong_checksum(tiny_cfg, tiny_archive, monkeypatch, capsys):
    monkeypatch.setenv("IMDB_SHA256", "0" * 64)
    assert_refused(tiny_cfg, capsys, "checksum mismatch")


def test_truncated_archive(tmp_path, tiny_cfg, tiny_archive, monkeypatch, capsys):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(tiny_archive.read_bytes()[:-200])
    use_archive(monkeypatch, truncated)
    assert_refused(tiny_cfg, capsys, "not a readable .tar.gz archive")


def test_not_a_gzip_file(tmp_path, tiny_cfg, monkeypatch, capsys):
    plain = tmp_path / "plain.tar.gz"
    use_archive(monkeypatch, plain, write_archive(plain, review_files(), mode="w"))
    assert_refused(tiny_cfg, capsys, "not a readable .tar.gz archive")


def test_member_escaping_with_dotdot(tmp_path, tiny_cfg, monkeypatch, capsys):
    hostile = tmp_path / "hostile.tar.gz"
    use_archive(monkeypatch, hostile, write_archive(hostile, review_files() | {"aclImdb/../../evil.txt": b"x"}))
    assert_refused(tiny_cfg, capsys, "refusing unsafe archive member 'aclImdb/../../evil.txt'")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


def test_symlink_pointing_outside(tmp_path, tiny_cfg, monkeypatch, capsys):
    hostile = tmp_path / "link.tar.gz"
    use_archive(monkeypatch, hostile, write_archive(hostile, review_files(),
                                                    links={"aclImdb/train/pos/99_9.txt": "/etc/passwd"}))
    assert_refused(tiny_cfg, capsys, "refusing unsafe archive member 'aclImdb/train/pos/99_9.txt'")


def test_absolute_member_stays_inside(tmp_path, tiny_cfg, monkeypatch):
    # The data filter strips the leading "/" (the member is then an ordinary relative path);
    # it is not a review, so it is not extracted at all.
    target = tmp_path / "evil.txt"
    archive = tmp_path / "absolute.tar.gz"
    use_archive(monkeypatch, archive, write_archive(archive, review_files() | {str(target): b"x"}))
    assert sum(download.download(tiny_cfg).values()) == 64
    assert not target.exists()


@pytest.mark.parametrize("missing", ["aclImdb/train/neg/", "aclImdb/test/pos/"])
def test_missing_label_folder(tmp_path, tiny_cfg, monkeypatch, capsys, missing):
    partial = tmp_path / "partial.tar.gz"
    files = {name: data for name, data in review_files().items() if not name.startswith(missing)}
    use_archive(monkeypatch, partial, write_archive(partial, files))
    assert_refused(tiny_cfg, capsys, f"lacks reviews in {missing.rstrip('/')}")


def test_missing_local_archive(tmp_path, tiny_cfg, monkeypatch, capsys):
    monkeypatch.setenv("IMDB_URL", str(tmp_path / "nowhere.tar.gz"))
    monkeypatch.setenv("IMDB_SHA256", "0" * 64)
    assert_refused(tiny_cfg, capsys, "archive not found")


def test_unreachable_url(tiny_cfg, monkeypatch, capsys):
    monkeypatch.setenv("IMDB_URL", "http://127.0.0.1:9/aclImdb_v1.tar.gz")  # discard port: refused
    monkeypatch.setenv("IMDB_SHA256", "0" * 64)
    assert_refused(tiny_cfg, capsys, "cannot download")
