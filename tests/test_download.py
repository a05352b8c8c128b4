"""download: verified, extracted with the data filter, hostile or broken archives refused."""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
from pathlib import Path

import pytest

from src.lib import data
from src.lib.errors import command
from src.stages import download
from tests.conftest import movie_files, review_files, with_archive, write_archive


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


def test_keeps_the_reviews_unlabeled_ones_and_movie_files_and_ignores_the_rest(tmp_path, tiny_cfg):
    files = (
        review_files()
        | movie_files()
        | {
            "aclImdb/train/labeledBow.feat": b"0 0:1",
            "aclImdb/imdb.vocab": b"the\n",
        }
    )
    archive = tmp_path / "full.tar.gz"
    write_archive(archive, files)
    counts = download.download(with_archive(tiny_cfg, archive))
    assert counts == {"train/pos": 16, "train/neg": 16, "test/pos": 16, "test/neg": 16, "train/unsup": 8}
    raw = Path(tiny_cfg.paths.raw)
    assert (raw / "aclImdb/train/pos/0_7.txt").read_bytes().startswith(b"a wonderful film")
    assert (raw / "aclImdb/train/unsup/3_0.txt").read_bytes() == b"an unlabeled review 3 of some film"
    assert (raw / "aclImdb/train/urls_neg.txt").read_bytes() == files["aclImdb/train/urls_neg.txt"]
    assert not (raw / "aclImdb/train/labeledBow.feat").exists() and not (raw / "aclImdb/imdb.vocab").exists()
    source = json.loads((raw / data.SOURCE_FILE).read_text())
    assert source["reviews"] == counts and source["movie_files"] == [
        "test/urls_neg.txt",
        "test/urls_pos.txt",
        "train/urls_neg.txt",
        "train/urls_pos.txt",
        "train/urls_unsup.txt",
    ]


def test_an_archive_of_labeled_reviews_only_still_works(tmp_path, tiny_cfg):
    archive = tmp_path / "labeled.tar.gz"
    write_archive(archive, review_files())
    counts = download.download(with_archive(tiny_cfg, archive))
    assert counts == {"train/pos": 16, "train/neg": 16, "test/pos": 16, "test/neg": 16}
    raw = Path(tiny_cfg.paths.raw)
    assert not (raw / "aclImdb/train/unsup").exists()
    source = json.loads((raw / data.SOURCE_FILE).read_text())
    assert source["sha256"] == with_archive(tiny_cfg, archive).data.sha256 and source["movie_files"] == []


def test_file_url_is_accepted(tiny_cfg, tiny_archive):
    cfg = with_archive(tiny_cfg, tiny_archive.as_uri(), tiny_cfg.data.sha256)
    assert sum(download.download(cfg).values()) == 72  # 64 labeled + 8 unlabeled


def test_relative_path_is_relative_to_the_project_root(tiny_cfg, tiny_archive, monkeypatch):
    # DVC sets DVC_ROOT to the project (also for a queued experiment running in a copy).
    project = tiny_archive.parent / "project"
    project.mkdir()
    monkeypatch.setenv("DVC_ROOT", str(project))
    cfg = with_archive(tiny_cfg, f"../{tiny_archive.name}", tiny_cfg.data.sha256)
    assert sum(download.download(cfg).values()) == 72  # 64 labeled + 8 unlabeled


def test_http_url_is_downloaded_with_a_progress_bar(tiny_cfg, tiny_archive, capsys):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tiny_archive.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{tiny_archive.name}"
        assert (
            sum(download.download(with_archive(tiny_cfg, url, tiny_cfg.data.sha256)).values()) == 72
        )  # 64 labeled + 8 unlabeled
    finally:
        server.shutdown()
    # tqdm's bar on stderr, ending at the archive's size (a local path draws none).
    size = f"{tiny_archive.stat().st_size / 1000:.2f}k"  # tqdm's unit_scale: 1.59k for 1,590 bytes
    assert re.search(rf"download: 100%\|.*\| {re.escape(size)}/{re.escape(size)} ", capsys.readouterr().err)
    assert not list(Path(tiny_cfg.paths.raw).glob("*.tar.gz")), "the downloaded archive is not kept"


def test_wrong_checksum(tiny_cfg, tiny_archive, capsys):
    assert_refused(with_archive(tiny_cfg, tiny_archive, "0" * 64), capsys, "checksum mismatch")


def test_truncated_archive(tmp_path, tiny_cfg, tiny_archive, capsys):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(tiny_archive.read_bytes()[:-200])
    assert_refused(with_archive(tiny_cfg, truncated), capsys, "not a readable .tar.gz archive")


def test_not_a_gzip_file(tmp_path, tiny_cfg, capsys):
    plain = tmp_path / "plain.tar.gz"
    write_archive(plain, review_files(), mode="w")
    assert_refused(with_archive(tiny_cfg, plain), capsys, "not a readable .tar.gz archive")


def test_member_escaping_with_dotdot(tmp_path, tiny_cfg, capsys):
    hostile = tmp_path / "hostile.tar.gz"
    write_archive(hostile, review_files() | {"aclImdb/../../evil.txt": b"x"})
    assert_refused(with_archive(tiny_cfg, hostile), capsys, "refusing unsafe archive member 'aclImdb/../../evil.txt'")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


def test_symlink_pointing_outside(tmp_path, tiny_cfg, capsys):
    hostile = tmp_path / "link.tar.gz"
    write_archive(hostile, review_files(), links={"aclImdb/train/pos/99_9.txt": "/etc/passwd"})
    assert_refused(
        with_archive(tiny_cfg, hostile), capsys, "refusing unsafe archive member 'aclImdb/train/pos/99_9.txt'"
    )


def test_absolute_member_is_refused(tmp_path, tiny_cfg, capsys):
    # The data filter strips the leading "/" (extracted, it would land inside the output folder,
    # beside the real reviews); an archive naming a member by absolute path is refused whole.
    archive = tmp_path / "absolute.tar.gz"
    write_archive(archive, review_files() | {"/aclImdb/train/pos/99_9.txt": b"x"})
    assert_refused(
        with_archive(tiny_cfg, archive),
        capsys,
        "refusing unsafe archive member '/aclImdb/train/pos/99_9.txt': an absolute path",
    )


@pytest.mark.parametrize("missing", ["aclImdb/train/neg/", "aclImdb/test/pos/"])
def test_missing_label_folder(tmp_path, tiny_cfg, capsys, missing):
    partial = tmp_path / "partial.tar.gz"
    write_archive(partial, {name: data for name, data in review_files().items() if not name.startswith(missing)})
    assert_refused(with_archive(tiny_cfg, partial), capsys, f"lacks reviews in {missing.rstrip('/')}")


def test_missing_local_archive(tmp_path, tiny_cfg, capsys):
    assert_refused(with_archive(tiny_cfg, tmp_path / "nowhere.tar.gz", "0" * 64), capsys, "archive not found")


def test_unreachable_url(tiny_cfg, capsys):
    url = "http://127.0.0.1:9/aclImdb_v1.tar.gz"  # discard port: refused
    assert_refused(with_archive(tiny_cfg, url, "0" * 64), capsys, "cannot download")
