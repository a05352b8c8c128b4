"""DVC stage `download`: fetch the IMDB archive, verify its sha256, extract the reviews.

The source is data.url (an http(s) URL, a file:// URL or a local path, relative to the
project root) and data.sha256, both params DVC tracks: nothing else names the archive, so a
different archive always reruns this stage and dvc.lock records the one used. Extracted:
aclImdb/{train,test}/{pos,neg}/*.txt, the unlabeled train/unsup/*.txt when the archive has
them, and the movie files urls_*.txt; the .feat files and anything else are skipped.
Every member is checked with tarfile's "data" filter first, so an archive holding a path
that escapes the output folder, or a link pointing outside it, is refused as a whole.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from src.lib import config
from src.lib.artifacts import atomic_path, project_root
from src.lib.data import SOURCE_FILE
from src.lib.errors import UserError, command

REVIEW_MEMBER = re.compile(r"^aclImdb/(train/(?:pos|neg|unsup)|test/(?:pos|neg))/[^/]+\.txt$")
URLS_MEMBER = re.compile(r"^aclImdb/(train|test)/urls_(pos|neg|unsup)\.txt$")  # line i: the movie of review i
LABELED = [f"{split}/{label}" for split in ("train", "test") for label in ("pos", "neg")]


def fetch(url: str, workdir: Path) -> tuple[Path, bool]:
    """Path of the archive, downloading it into workdir if remote; and whether it was."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        return _download(url, workdir / "archive.tar.gz"), True
    if parsed.scheme == "file":
        path = Path(url2pathname(parsed.path))
    elif parsed.scheme == "" or len(parsed.scheme) == 1:  # a plain path (or a Windows drive)
        path = project_root() / url  # an absolute url stays as it is
    else:
        raise UserError(f"unsupported archive URL {url!r}: use http(s)://, file:// or a local path")
    if not path.is_file():
        raise UserError(f"archive not found: {path}")
    return path, False


def _download(url: str, target: Path) -> Path:
    from tqdm import tqdm

    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="download", file=sys.stderr) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot download {url}: {reason}") from None
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def extract_reviews(archive: Path, dest: Path) -> tuple[dict[str, int], list[str]]:
    """Extract the reviews (labeled, and the unlabeled ones in train/unsup when the archive has
    them) and the movie files (urls_*.txt) into dest; return the number of reviews per folder
    and the movie files found."""
    counts = dict.fromkeys(LABELED, 0)
    movie_files = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                try:
                    filtered = tarfile.data_filter(member, str(dest))
                except tarfile.FilterError as exc:
                    raise UserError(f"{archive}: refusing unsafe archive member {member.name!r}: {exc}") from None
                if filtered.name != member.name:  # the filter strips a leading "/": no archive of ours has one
                    raise UserError(f"{archive}: refusing unsafe archive member {member.name!r}: an absolute path")
                review, urls = REVIEW_MEMBER.match(member.name), URLS_MEMBER.match(member.name)
                if not (review or urls):
                    continue
                if not member.isfile():
                    raise UserError(f"{archive}: {member.name!r} is not a regular file")
                tar.extract(member, dest, filter="data")
                if review:
                    counts[review[1]] = counts.get(review[1], 0) + 1
                else:
                    movie_files.append(member.name.removeprefix("aclImdb/"))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise UserError(f"{archive} is not a readable .tar.gz archive (corrupt or truncated?): {exc}") from None
    empty = [folder for folder in LABELED if counts[folder] == 0]
    if empty:
        raise UserError(f"{archive} lacks reviews in aclImdb/{', aclImdb/'.join(empty)}: not the IMDB layout")
    return counts, sorted(movie_files)


def download(cfg: config.Config) -> dict[str, int]:
    url, expected = cfg.data.url, cfg.data.sha256.lower()
    with atomic_path(cfg.paths.raw, directory=True) as tmp:
        archive, downloaded = fetch(url, tmp)
        actual = sha256_of(archive)
        if actual != expected:
            raise UserError(
                f"checksum mismatch for {url}: expected sha256 {expected}, got {actual} "
                "(set data.sha256 if you meant to use this archive)"
            )
        counts, movie_files = extract_reviews(archive, tmp)
        source = {
            "url": url,
            "sha256": actual,
            "bytes": archive.stat().st_size,
            "reviews": counts,
            "movie_files": movie_files,
        }
        if downloaded:
            archive.unlink()
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
    return counts


@command
def main(argv: list[str] | None = None) -> None:
    cfg = config.from_argv(sys.argv[1:] if argv is None else argv, usage=__doc__)
    counts = download(cfg)
    print(
        f"extracted {sum(counts.values())} reviews to {cfg.paths.raw}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


if __name__ == "__main__":
    main()
