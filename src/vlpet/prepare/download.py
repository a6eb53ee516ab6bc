"""``prepare download SOURCE --to RAW``: fetch the original files of one source (``manifest.SOURCES``) into
``RAW/<folder>/``, resumably, check their published checksums, and unpack archives into ``RAW/<folder>/<stem>/``.

A transfer goes to ``<name>.part`` and resumes from it with an HTTP Range request (after a dropped connection within
a run, or in a later run; a 206 answer must start where it was asked to); the file gets its final name only once
complete and verified: its published checksum where there is one, and always its format (a JSON file parses, a
zip's directory reads, a tar's members list), so a body cut short without a Content-Length is never kept. A file
that fails (fresh or found from an earlier run) is removed and fetched again once; never used. Hub files go through
``huggingface_hub``; a file with mirrors (the Karpathy split) is taken from the first source whose copy validates.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import time
import zipfile
import zlib
from http.client import HTTPException
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from . import manifest
from .manifest import Item
from .raw import PrepareError, file_digest

CHUNK = 1 << 20
RETRIES = 4


class DownloadError(PrepareError):
    """A download that cannot complete (HTTP error, too many dropped connections, wrong checksum). ``resumable``:
    whether running again continues it (a dropped connection), or not (a 404, a redirect loop, a bad file)."""

    def __init__(self, message: str, resumable: bool = False):
        super().__init__(message)
        self.resumable = resumable


HF_ENDPOINT: str | None = None  # None: huggingface_hub's (HF_ENDPOINT); tests point it at 127.0.0.1


class Interrupted(Exception):
    """A transfer that stopped early; it is resumed from its ``.part`` file."""


def verify(path: Path, checksum: tuple[str, str] | None, name: str | None = None) -> None:
    """Raise (and remove the file) when its checksum is not the published one or its format does not read
    (``name``: the final file name, whose suffix says the format)."""
    name = name or path.name
    if checksum is not None:  # a published checksum settles it
        algorithm, want = checksum
        got = file_digest(path, algorithm)
        if got != want:
            path.unlink()
            raise DownloadError(f"{name}: {algorithm} {got} differs from the published {want}; the file was removed "
                                "and is not used (if it persists, the source has changed)")
        return
    problem = format_problem(path, name)
    if problem:
        path.unlink()
        raise DownloadError(f"{name}: {problem}; the file was removed and is not used")


def format_problem(path: Path, name: str) -> str | None:
    """Why ``path`` is not a valid file of the kind its name says (JSON, zip, tar), or None (other kinds pass)."""
    import json

    try:
        if name.endswith(".json"):  # one JSON value, or JSON lines (NLVR2)
            with open(path, encoding="utf-8") as f:
                try:
                    json.load(f)
                except json.JSONDecodeError as err:
                    if not err.msg.startswith("Extra data"):
                        raise
                    f.seek(0)
                    for line in f:
                        if line.strip():
                            json.loads(line)
        elif name.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                z.namelist()
        elif name.endswith((".tar", ".tar.gz", ".tgz")):
            with tarfile.open(path) as t:
                t.getmembers()
    except (ValueError, zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        kind = "JSON" if name.endswith(".json") else "zip" if name.endswith(".zip") else "tar"
        return f"not a valid {kind} file ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}" \
               f"; cut short?)"
    return None


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": "vlpet-prepare", **({"Range": f"bytes={start}-"} if start else {})}
    try:
        return urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and start:  # nothing left to send: the part is already whole
            return None
        if err.code >= 500 or err.code == 429:
            raise Interrupted(f"HTTP {err.code}") from err
        if 300 <= err.code < 400:
            raise DownloadError(f"{url}: redirect loop (HTTP {err.code}): the link goes round in circles, the file "
                                "has moved or the host is gone; running again will not help") from None
        if err.code in (404, 410):
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason}: the file is not at this address (gone or "
                                "moved); running again will not help") from None
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (URLError, OSError, HTTPException) as err:
        raise Interrupted(str(err)) from err


def transfer(url: str, part: Path, timeout: float = 60.0) -> None:
    """Append the rest of ``url`` to ``part`` (Range request from its current size); Interrupted if it stops early."""
    from tqdm import tqdm

    start = part.stat().st_size if part.exists() else 0
    response = _open(url, start, timeout)
    if response is None:
        return
    with response:
        if start and response.status != 206:  # the server ignored the Range header: start again
            start = 0
        if start:
            check_range(url, response.headers.get("Content-Range"), start)
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        with open(part, "ab" if start else "wb") as f, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                                             desc=part.name[:-5], disable=None) as bar:
            try:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    f.write(chunk)
                    bar.update(len(chunk))
            except (OSError, HTTPException) as err:
                raise Interrupted(str(err)) from err
    if total is not None and part.stat().st_size != total:
        raise Interrupted(f"got {part.stat().st_size:,} of {total:,} bytes")


def check_range(url: str, content_range: str | None, start: int) -> None:
    """A 206 answer must cover the bytes from ``start`` on (``Content-Range: bytes START-END/TOTAL``)."""
    import re

    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", content_range or "")
    if match is None or int(match.group(1)) != start:
        raise DownloadError(f"{url}: asked for the bytes from {start:,} on, the server sent "
                            f"'Content-Range: {content_range}'; refused (the partial file is kept as it was)")


def fetch(url: str, dest: Path, checksum: tuple[str, str] | None = None, retries: int = RETRIES,
          backoff: float = 2.0) -> Path:
    """Download ``url`` to ``dest`` (skipped when ``dest`` is already there and verifies; a file there that does not
    verify is removed and fetched again). The body is checked (checksum, format) before it gets its final name; a
    body that fails is removed and fetched once more from the start."""
    if dest.exists():
        try:
            verify(dest, checksum)
            return dest
        except DownloadError as err:
            print(f"{err}; fetching it again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for round_ in range(2):
        for attempt in range(retries + 1):
            try:
                transfer(url, part)
                break
            except Interrupted as err:
                if attempt == retries:
                    raise DownloadError(f"{url}: {err} ({retries + 1} tries); run the same command again to resume "
                                        f"from {part}", resumable=True) from None
                time.sleep(backoff * 2**attempt)
        try:
            verify(part, checksum, dest.name)
            break
        except DownloadError as err:
            if round_ == 1:
                raise DownloadError(f"{err} (fetched twice from {url})") from None
            print(f"{err}; fetching it again from the start")
    os.replace(part, dest)
    return dest


def archive_stem(name: str) -> str:
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def unpack(archive: Path) -> Path:
    """Unpack ``archive`` into ``<its folder>/<stem>/`` (once; a single top folder named like the stem is not
    repeated). Unpacking goes to a temp folder renamed at the end."""
    target = archive.with_name(archive_stem(archive.name))
    if target.exists():
        return target
    temp = archive.with_name(f".{target.name}.unpacking")
    shutil.rmtree(temp, ignore_errors=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(temp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                t.extractall(temp, filter="data")
        else:
            raise zipfile.BadZipFile("neither a zip nor a tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as err:  # a damaged archive
        shutil.rmtree(temp, ignore_errors=True)
        archive.unlink()
        raise BadArchive(f"{archive} cannot be unpacked ({type(err).__name__}: {err}); it was removed") from None
    inner = temp / target.name
    os.replace(inner if [p.name for p in temp.iterdir()] == [target.name] and inner.is_dir() else temp, target)
    shutil.rmtree(temp, ignore_errors=True)
    return target


class BadArchive(DownloadError):
    """An archive that downloaded whole but does not unpack: removed, and fetched again once."""


def fetch_hub(item: Item, folder: Path) -> Path:
    """Download one file of a Hugging Face Hub repository into ``folder`` (huggingface_hub imported only here)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise DownloadError("downloading from the Hugging Face Hub needs huggingface_hub: pip install "
                            "huggingface_hub") from None
    repo_id, filename = item.hub
    extra = {"repo_type": item.hub_type} if item.hub_type != "model" else {}
    if HF_ENDPOINT:
        extra["endpoint"] = HF_ENDPOINT
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, local_dir=folder, **extra))
    except Exception as err:  # the hub client's own errors (HTTP, offline, auth): report, do not trace back
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise DownloadError(f"{item.where_hub()} {filename}: {type(err).__name__}: {text}", resumable=True) from None


def fetch_mirrors(item: Item, to: Path) -> Path:
    """``item`` (one original file) from the first of its sources whose copy validates (``item.validate``), tried
    in order; a copy that fails is removed. Every source tried and why it failed are in the error."""
    from .karpathy import validate

    dest = to / item.folder / item.name
    if dest.is_file():
        try:
            validate(item.validate, dest)
            return dest
        except PrepareError as err:
            print(f"{dest}: {err}; fetching it again")
            dest.unlink()
    work = to / item.folder / f".{item.name}.mirrors"
    tried = []
    for source in item.mirrors:
        if source.status != "public":
            tried.append(f"{source.where()}: not fetched")
            continue
        shutil.rmtree(work, ignore_errors=True)
        try:
            got = fetch_hub(source, work) if source.hub else fetch(source.url, work / source.name, source.checksum)
            if source.member:
                got = extract_member(got, source.member, work)
            validate(item.validate, got)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(got, dest)
            shutil.rmtree(work, ignore_errors=True)
            print(f"{item.name}: taken from {source.where()}")
            return dest
        except PrepareError as err:
            tried.append(f"{source.where()}: {err}")
    shutil.rmtree(work, ignore_errors=True)
    raise DownloadError(f"no source of {item.name} gave a valid copy; tried {len(tried)}: " + " | ".join(tried)
                        + (f" | {item.note}" if item.note else ""))


def extract_member(archive: Path, member: str, work: Path) -> Path:
    """The file ``member`` (matched by its name, anywhere in the zip) of ``archive``, unzipped into ``work``."""
    try:
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n.rsplit("/", 1)[-1] == member]
            if not names:
                raise DownloadError(f"{archive.name} holds no {member}")
            target = work / f".{member}.unzipped"
            with z.open(names[0]) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{archive.name} is not a valid zip ({err})") from None
    return target


def human(size: int | None) -> str:
    """≈ size in B/KB/MB/GB, or '?' when unpublished."""
    if size is None:
        return "?"
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def state(item: Item, to: Path) -> str:
    """present | partial (N bytes) | to fetch | gone | by request."""
    if item.status != "public":
        return {"gone": "GONE", "request": "BY REQUEST"}[item.status]
    dest = to / item.folder / item.name
    part = dest.with_name(dest.name + ".part")
    if dest.exists() or (item.unpack and (to / item.folder / archive_stem(item.name)).is_dir()):
        return "present"
    return f"partial ({human(part.stat().st_size)})" if part.exists() else "to fetch"


def print_plan(source: str, items: list[Item], to: Path) -> None:
    """The ``--dry-run`` listing: each file, its size and state, and the total still to fetch."""
    print(f"prepare download {source} → {to} (dry run: nothing is fetched)")
    pending = [item for item in items if state(item, to) not in ("present", "GONE", "BY REQUEST")]
    for item in items:
        print(f"  {item.name:34s} {human(item.size):>9s}  {state(item, to):16s} {item.where()}")
    known = sum(item.size for item in pending if item.size is not None)
    unknown = sum(item.size is None for item in pending)
    sizes = [f"≈{human(known)}"] * bool(known) + [f"{unknown} of unpublished size"] * bool(unknown)
    unpacked = "; unpacked archives need about as much again" if any(item.unpack for item in pending) else ""
    print(f"to fetch: {len(pending)} files" + (f", {' + '.join(sizes)}" if sizes else "") + unpacked)


def fetch_item(item: Item, to: Path) -> Path:
    """Fetch (and unpack) one public item."""
    folder = to / item.folder
    if item.mirrors:
        return fetch_mirrors(item, to)
    if item.hub:
        return fetch_hub(item, folder)
    unpacked = folder / archive_stem(item.name)
    if item.unpack and unpacked.is_dir():  # done before (the archive may have been deleted since)
        return unpacked
    path = fetch(item.url, folder / item.name, item.checksum)
    if not item.unpack:
        return path
    try:
        return unpack(path)
    except BadArchive as err:
        print(f"{err}; fetching it again")
        try:
            return unpack(fetch(item.url, folder / item.name, item.checksum))
        except BadArchive as again:
            raise DownloadError(f"{again} (fetched twice from {item.url}; the source's file is damaged)") from None


ARCHIVE_REPO = "ylsung/VL-Adapter-datasets"


def _hub_failure(err: Exception, what: str) -> DownloadError:
    """One line for a failed Hub call: gone or private, gated, offline, or other."""
    name = type(err).__name__
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if name in ("RepositoryNotFoundError", "GatedRepoError") or "401" in text or "404" in text:
        why = ("it is gated: accept its terms on huggingface.co and log in (hf auth login)" if name == "GatedRepoError"
               else "it is gone, renamed or private (log in with hf auth login if you were given access)")
        return DownloadError(f"{what}: {why} ({name})")
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or "Connect" in name or "Timeout" in name or \
            isinstance(err, (OSError, ConnectionError)):
        return DownloadError(f"{what}: cannot reach the Hub (offline? HF_HUB_OFFLINE set?): {name}: {text}",
                             resumable=True)
    return DownloadError(f"{what}: {name}: {text}", resumable=True)


def download_archive(to: Path, dry_run: bool = False, repo: str = ARCHIVE_REPO) -> int:
    """The VL-Adapter release as re-hosted on the Hub (dataset ``repo``) into ``to`` (``snapshot_download``:
    resumable, files already there are kept); ``dry_run`` lists its files and sizes and fetches nothing."""
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError:
        raise DownloadError("downloading the archive needs huggingface_hub: pip install huggingface_hub") from None
    what = f"huggingface.co/datasets/{repo}"
    endpoint = {"endpoint": HF_ENDPOINT} if HF_ENDPOINT else {}
    try:
        files = [(f.path, getattr(f, "size", None)) for f in HfApi(**endpoint).list_repo_tree(
            repo, repo_type="dataset", recursive=True) if getattr(f, "size", None) is not None or
            type(f).__name__ == "RepoFile"]
    except Exception as err:  # the hub client's errors: one line
        raise _hub_failure(err, what) from None
    total = sum(size or 0 for _, size in files)
    present = [(name, size) for name, size in files if (to / name).is_file() and (to / name).stat().st_size == size]
    if dry_run:
        print(f"prepare download archive → {to} (dry run: nothing is fetched); {what}")
        for name, size in files:
            mark = "present" if (name, size) in present else "to fetch"
            print(f"  {name:60s} {human(size):>9s}  {mark}")
        left = total - sum(size or 0 for _, size in present)
        print(f"{len(files)} files, {human(total)}; to fetch: {len(files) - len(present)} files, {human(left)}. "
              "The full release converts to ≈125 GB packed (621,783 images x 200,704 B) or ≈145 GB of h5 files")
        return 0
    try:
        path = snapshot_download(repo, repo_type="dataset", local_dir=to, **endpoint)
    except Exception as err:  # the hub client's errors: one line
        raise _hub_failure(err, what) from None
    print(f"{what}: {len(files)} files in {path}; next: python -m vlpet prepare archive --snapshot {to} "
          "--out datasets")
    return 0


def download_source(source: str, to: Path, dry_run: bool = False, images: bool = True) -> int:
    """Fetch every item of ``source``; exit status 1 when a fetchable item failed (the others still go on)."""
    items = [item for item in manifest.SOURCES[source] if images or not item.images]
    if dry_run:
        print_plan(source, items, to)
        return 0
    failed, resumable = [], False
    for item in items:
        if item.status != "public":
            print(f"NOT FETCHED {item.name}: {item.where()}")
            continue
        try:
            print(f"{item.name}: {fetch_item(item, to)}")
        except PrepareError as err:
            failed.append(item.name)
            resumable |= getattr(err, "resumable", False)
            print(f"FAILED {item.name}: {err}")
    if failed:
        print(f"{len(failed)} of {len(items)} files failed: {', '.join(failed)}"
              + ("; run the command again to resume the interrupted ones" if resumable else ""))
    return 1 if failed else 0
