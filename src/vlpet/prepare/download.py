"""``prepare download SOURCE --to RAW``: fetch the original files of one source (``manifest.SOURCES``) into
``RAW/<folder>/``, resumably, check their published checksums, and unpack archives into ``RAW/<folder>/<stem>/``.

A transfer goes to ``<name>.part`` and resumes from it with an HTTP Range request (after a dropped connection within
a run, or in a later run); the file gets its final name only once complete and verified. A file whose checksum
differs from the published one is removed and never used. Hub weights go through ``huggingface_hub``.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import time
import zipfile
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
    """A download that cannot complete (HTTP error, too many dropped connections, wrong checksum)."""


class Interrupted(Exception):
    """A transfer that stopped early; it is resumed from its ``.part`` file."""


def verify(path: Path, checksum: tuple[str, str] | None) -> None:
    """Raise (and remove the file) when its checksum is not the published one."""
    if checksum is None:
        return
    algorithm, want = checksum
    got = file_digest(path, algorithm)
    if got != want:
        path.unlink()
        raise DownloadError(f"{path.name}: {algorithm} {got} differs from the published {want}; the file was removed "
                            "and is not used (run again to re-download; if it persists, the source has changed)")


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": "vlpet-prepare", **({"Range": f"bytes={start}-"} if start else {})}
    try:
        return urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and start:  # nothing left to send: the part is already whole
            return None
        if err.code >= 500 or err.code == 429:
            raise Interrupted(f"HTTP {err.code}") from err
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from err
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


def fetch(url: str, dest: Path, checksum: tuple[str, str] | None = None, retries: int = RETRIES,
          backoff: float = 2.0) -> Path:
    """Download ``url`` to ``dest`` (skipped when ``dest`` is already there and verifies)."""
    if dest.exists():
        verify(dest, checksum)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            transfer(url, part)
            break
        except Interrupted as err:
            if attempt == retries:
                raise DownloadError(f"{url}: {err} ({retries + 1} tries); run the same command again to resume "
                                    f"from {part}") from None
            time.sleep(backoff * 2**attempt)
    verify(part, checksum)
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
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(temp)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            t.extractall(temp, filter="data")
    else:
        raise DownloadError(f"{archive} is neither a zip nor a tar archive; remove it and download again")
    inner = temp / target.name
    os.replace(inner if [p.name for p in temp.iterdir()] == [target.name] and inner.is_dir() else temp, target)
    shutil.rmtree(temp, ignore_errors=True)
    return target


def fetch_hub(item: Item, folder: Path) -> Path:
    """Download one file of a Hugging Face Hub repository into ``folder`` (huggingface_hub imported only here)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise DownloadError("downloading hub weights needs huggingface_hub: pip install huggingface_hub") from None
    repo_id, filename = item.hub
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, local_dir=folder))
    except Exception as err:  # the hub client's own errors (HTTP, offline, auth): report, do not trace back
        raise DownloadError(f"huggingface.co/{repo_id} {filename}: {type(err).__name__}: {err}") from None


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
    if item.hub:
        return fetch_hub(item, folder)
    unpacked = folder / archive_stem(item.name)
    if item.unpack and unpacked.is_dir():  # done before (the archive may have been deleted since)
        return unpacked
    path = fetch(item.url, folder / item.name, item.checksum)
    return unpack(path) if item.unpack else path


def download_source(source: str, to: Path, dry_run: bool = False, images: bool = True) -> int:
    """Fetch every item of ``source``; exit status 1 when a fetchable item failed (the others still go on)."""
    items = [item for item in manifest.SOURCES[source] if images or not item.images]
    if dry_run:
        print_plan(source, items, to)
        return 0
    failed = []
    for item in items:
        if item.status != "public":
            print(f"NOT FETCHED {item.name}: {item.where()}")
            continue
        try:
            print(f"{item.name}: {fetch_item(item, to)}")
        except PrepareError as err:
            failed.append(item.name)
            print(f"FAILED {item.name}: {err}")
    if failed:
        print(f"{len(failed)} of {len(items)} files failed: {', '.join(failed)}; run the command again to resume")
    return 1 if failed else 0
