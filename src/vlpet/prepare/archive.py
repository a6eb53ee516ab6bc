"""``python -m vlpet prepare archive --snapshot DIR --out ROOT``: the VL-Adapter release from its Hub copy
(``ylsung/VL-Adapter-datasets``, fetched by ``prepare download archive``) turned into the tree the loaders read.

The snapshot holds parquet shards of per-image CLIP features and plain files (annotations). Nothing about its
layout is assumed; everything is discovered:

* a **feature shard** is a parquet file with one column whose Arrow type is a list of lists of floats, e.g.
  ``fixed_size_list<fixed_size_list<float16>[2048]>[49]`` (any grid size, channel count and float width; plain or
  large lists too when every row has the same shape); an **image shard** has a binary column, or a struct column
  with a binary ``bytes`` field (the Hub's Image feature); any other parquet file is an error printing its schema
  and its first row's keys;
* the **image id** comes from an id-like column (``img_id``, ``image_id``, ``id``, ``key``, ``__key__``, ...; string
  or integer), or from the stem of a path-like column (``path``, ``file_name``, ...): the file name up to its first
  dot, as the original extractor named its files;
* the **feature folder** (``COCO``, ``GQA``, ``VG``, ``nlvr``) comes from the path column, else a folder-like column
  (``folder``, ``dataset``, ...), else the shard's place in the snapshot (``features/COCO/data_clip_RN101_att/
  part-00000.parquet``, ``data/vg-00001.parquet``); it becomes ``<task>/clip_features/<feature>/`` (the feature name
  is a ``data_*`` component, default ``data_clip_RN101_att``; the release's ``clip_featuers`` spelling is read as
  ``clip_features``, the name the loaders use);
* every other file (not hidden, not at the snapshot's top level, where the dataset card and manifest live) is copied
  to its path from the first tree folder it sits in (``annotations/vqa/karpathy_train.json`` ->
  ``vqa/karpathy_train.json``), or, outside any tree folder, from the folder that holds the tree folders.

``--layout packed`` (default) writes each feature folder's ``packed/{features.npy,ids.json}`` directly (the format of
``prepare pack``, through its writer; no per-image files); ``--layout h5`` writes ``<img_id>.h5`` files holding
``<img_id>/features``, as the original release. Features are copied bit for bit. The work is resumable per shard (a
progress file ``ROOT/.vlpet-archive.json``; a packed folder is built in ``<folder>/.packed.archive-partial/``) and
atomic (a packed folder, an h5 file and a copied file each appear complete or not at all). Existing files that
differ from the snapshot are never overwritten: the run stops before writing and names them.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..formats import ARRAY, INDEX, PACKED
from .raw import PrepareError

FEATURE_TASKS = {"coco": "COCO", "gqa": "GQA", "vg": "VG", "nlvr": "nlvr", "nlvr2": "nlvr"}
TREE_FOLDERS = {**FEATURE_TASKS, "vqa": "vqa"}
TASKS = {"vqa": ("vqa", "COCO"), "caption": ("COCO",), "gqa": ("GQA", "VG"), "nlvr": ("nlvr",)}
FEATURES_DIR, FEATURES_TYPO = "clip_features", "clip_featuers"
DEFAULT_FEATURE = "data_clip_RN101_att"
ID_COLUMNS = ("img_id", "image_id", "imgid", "id", "key", "__key__", "uid", "image", "name", "stem")
PATH_WORDS = ("path", "file", "filename", "location", "uri", "url")
FOLDER_COLUMNS = ("folder", "dataset", "task", "subset", "source", "directory", "dir", "group", "collection")
PROGRESS = ".vlpet-archive.json"
PARTIAL = ".packed.archive-partial"
BATCH_ROWS = 256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--snapshot", required=True, help="local copy of the Hub dataset (prepare download archive)")
    parser.add_argument("--out", required=True, help="datasets root to write (created if missing)")
    parser.add_argument("--layout", choices=("packed", "h5"), default="packed",
                        help="packed: one memory-mappable array per feature folder (default); h5: one file per image")
    parser.add_argument("--tasks", nargs="+", default=None,
                        help=f"only the files of these tasks ({', '.join(TASKS)}; commas or spaces)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes converting shards side by side (default 1; decoding is ≈200 images/s per "
                             "core, so use about one per core on a big machine)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


# ---------------------------------------------------------------------------------------------------------------
# discovery


def _parts(rel: str) -> list[str]:
    return [p for p in re.split(r"[\\/]+", rel) if p not in ("", ".")]


def feature_folder(parts: list[str], name: str | None = None) -> str | None:
    """``<task>/clip_features/<feature>`` from path components (``features/COCO/data_clip_RN101_att``,
    ``datasets/VG/clip_featuers/data_clip_RN101_att``, ``nlvr``), else from the tokens of a file name
    (``coco-00001-of-00040``); None when nothing names a feature task."""
    for i, part in enumerate(parts):
        task = FEATURE_TASKS.get(part.lower())
        if task:
            rest = [p for p in parts[i + 1:] if p.lower() not in (FEATURES_DIR, FEATURES_TYPO)]
            feature = next((p for p in rest if p.startswith("data_")), DEFAULT_FEATURE)
            return f"{task}/{FEATURES_DIR}/{feature}"
    for part in [*parts, *([name] if name else [])]:  # a task named by a token: coco_feats/, vg-00001-of-00040
        tasks = {FEATURE_TASKS[t] for t in re.split(r"[^A-Za-z0-9]+", part.lower()) if t in FEATURE_TASKS}
        if len(tasks) == 1:
            feature = next((p for p in parts if p.startswith("data_")), DEFAULT_FEATURE)
            return f"{tasks.pop()}/{FEATURES_DIR}/{feature}"
    return None


def image_folder(parts: list[str], name: str | None = None) -> str | None:
    """``<task>/images`` for an image shard (the NLVR2 photographs of the release go to ``nlvr/images/``)."""
    folder = feature_folder(parts, name)
    return None if folder is None else f"{folder.split('/')[0]}/images"


def unsafe_id(img_id: str) -> bool:
    """An id that is no plain file name (``/``, ``\\``, ``..``, empty, NUL): ``<id>.h5`` would leave its folder."""
    return not img_id or img_id in (".", "..") or any(c in img_id for c in "/\\\0") or img_id.startswith("..")


def _schema_text(schema) -> str:
    return "; ".join(f"{f.name}: {f.type}" for f in schema)


def _first_row_keys(pf, columns: list[str]) -> list[str]:
    if pf.metadata.num_rows == 0 or not columns:
        return []
    row = pf.read_row_group(0, columns=columns).slice(0, 1).to_pylist()
    keys = []
    for name, value in (row[0].items() if row else []):
        keys.append(f"{name}{{{', '.join(value)}}}" if isinstance(value, dict) else name)
    return keys


def grid_shape(arrow_type) -> tuple[int | None, int | None, object] | None:
    """(rows, channels, float type) of a list-of-lists-of-floats type (sizes None when not fixed), or a flat fixed
    list of floats whose length is a multiple of 49 (rows 49); None for any other type."""
    import pyarrow as pa

    def is_list(t):
        return pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)

    def size(t):
        return t.list_size if pa.types.is_fixed_size_list(t) else None

    if not is_list(arrow_type):
        return None
    inner = arrow_type.value_type
    if is_list(inner) and pa.types.is_floating(inner.value_type):
        return size(arrow_type), size(inner), inner.value_type
    if pa.types.is_floating(inner) and size(arrow_type) and size(arrow_type) % 49 == 0:
        return 49, size(arrow_type) // 49, inner
    return None


def image_column(schema) -> str | None:
    """A binary column, or a struct column with a binary ``bytes`` field (the Hub's Image feature)."""
    import pyarrow as pa

    for f in schema:
        if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type):
            return f.name
        if pa.types.is_struct(f.type):
            names = [f.type.field(i).name for i in range(f.type.num_fields)]
            if "bytes" in names and pa.types.is_binary(f.type.field(names.index("bytes")).type):
                return f.name
    return None


@dataclass
class Shard:
    """One parquet shard: what it holds and where each of its rows goes."""

    path: Path
    rel: str
    kind: str  # features | images
    column: str
    shape: tuple[int, int] | None = None  # (rows, channels) of one image's features
    dtype: object = None
    folders: list[str | None] = field(default_factory=list)  # per row; None: left out (--tasks)
    ids: list[str] = field(default_factory=list)


def discover(path: Path, rel: str) -> Shard:
    """Read a shard's schema and its id / path / folder columns (never the features) and place every row."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # not parquet, truncated: one line naming the file
        raise PrepareError(f"{rel}: not a readable parquet file ({type(err).__name__}: {err})".splitlines()[0]) \
            from None
    schema = pf.schema_arrow
    grids = [f for f in schema if grid_shape(f.type) is not None]
    if len(grids) > 1:
        named = [f for f in grids if "feat" in f.name.lower()]
        grids = named if len(named) == 1 else grids
    picture = image_column(schema) if not grids else None

    def unrecognised(what: str) -> PrepareError:
        keys = _first_row_keys(pf, [f.name for f in schema if f.name not in {g.name for g in grids}])
        return PrepareError(f"{rel}: unrecognised parquet shard ({what}); schema: {_schema_text(schema)}; "
                            f"first row's keys: {', '.join(keys) or '(no rows)'}")

    if len(grids) > 1:
        raise unrecognised(f"{len(grids)} feature columns: {', '.join(f.name for f in grids)}")
    if not grids and picture is None:
        raise unrecognised("no feature column of type list<list<float>> and no image column")
    shard = Shard(path, rel, "features" if grids else "images", grids[0].name if grids else picture)
    if grids:
        rows, channels, value_type = grid_shape(grids[0].type)
        shard.dtype = np.dtype(f"<f{value_type.bit_width // 8}")  # float16 / 32 / 64, little-endian as stored
        if rows is None or channels is None:  # plain lists: the first row gives the shape (each row is checked)
            first = pf.read_row_group(0, columns=[shard.column]).column(0)[0].as_py() if pf.metadata.num_rows else []
            rows, channels = len(first), len(first[0]) if first else 0
        shard.shape = (rows, channels)

    def is_text(t):
        return pa.types.is_string(t) or pa.types.is_large_string(t) or (
            pa.types.is_dictionary(t) and pa.types.is_string(t.value_type))

    lower = {f.name.lower(): f for f in schema}
    id_field = next((lower[n] for n in ID_COLUMNS if n in lower and (is_text(lower[n].type) or
                                                                      pa.types.is_integer(lower[n].type))), None)
    taken = {id_field.name} if id_field is not None else set()
    path_field = next((f for f in schema if is_text(f.type) and f.name not in taken
                       and any(w in f.name.lower() for w in PATH_WORDS)), None)
    taken |= {path_field.name} if path_field is not None else set()
    folder_field = next((lower[n] for n in FOLDER_COLUMNS if n in lower and is_text(lower[n].type)
                         and lower[n].name not in taken), None)
    texts = [f for f in schema if is_text(f.type)]
    if id_field is None and path_field is None and len(texts) == 1:
        id_field = texts[0]
    if id_field is None and path_field is None:
        raise unrecognised("no image id column (img_id, image_id, id, key, ...) and no path column")
    wanted = [f.name for f in (id_field, path_field, folder_field) if f is not None]
    table = pf.read(columns=wanted)
    values = {name: table.column(name).to_pylist() for name in wanted}
    place = feature_folder(_parts(rel)[:-1], Path(rel).stem) if shard.kind == "features" else \
        image_folder(_parts(rel)[:-1], Path(rel).stem)
    where = image_folder if shard.kind == "images" else feature_folder
    for row in range(table.num_rows):
        raw_id = values[id_field.name][row] if id_field is not None else None
        raw_path = values[path_field.name][row] if path_field is not None else None
        if raw_path is None and isinstance(raw_id, str) and ("/" in raw_id or "\\" in raw_id):
            parts = _parts(raw_id)
            if ".." not in parts and ("." in parts[-1] or where(parts[:-1]) is not None):
                raw_path, raw_id = raw_id, None  # an id column that holds file paths
        folder = None
        if raw_path is not None:
            parts = _parts(raw_path)
            if ".." in parts:
                raise PrepareError(f"{rel}: row {row} names the path {raw_path!r}, which leaves its folder; refused")
            folder = where(parts[:-1]) if len(parts) > 1 else None
            if raw_id is None:
                raw_id = parts[-1].split(".")[0] if parts else ""
        if folder is None and folder_field is not None and values[folder_field.name][row]:
            folder = where(_parts(values[folder_field.name][row]))
        folder = folder or place
        if folder is None:
            raise unrecognised(f"row {row}: no feature folder (COCO, GQA, VG, nlvr) in its path, a folder column "
                               "or the shard's place in the snapshot")
        img_id = "" if raw_id is None else str(raw_id)
        if unsafe_id(img_id):
            raise PrepareError(f"{rel}: row {row} has the image id {img_id!r}, which is no plain file name "
                               "(contains '/', '\\' or '..', or is empty); refused")
        shard.folders.append(folder)
        shard.ids.append(img_id)
    return shard


# ---------------------------------------------------------------------------------------------------------------
# planning


@dataclass
class Plan:
    shards: list[Shard]
    files: list[tuple[Path, str]]  # (source, destination relative to ROOT)
    skipped: list[str]  # snapshot files not copied (top level, other tasks)


def _canonical(first: str) -> str | None:
    return TREE_FOLDERS.get(first.lower())


def plan_snapshot(snapshot: Path, tasks: list[str] | None, out: Path | None = None) -> Plan:
    """Every shard discovered and every other file placed; rows and files of tasks not asked for are left out."""
    if not snapshot.is_dir():
        raise PrepareError(f"--snapshot folder not found: {snapshot}")
    keep = None if tasks is None else {folder for task in tasks for folder in TASKS[task]}
    shards, others, skipped = [], [], []
    skip = None if out is None else Path(out).resolve()
    for folder, subfolders, names in os.walk(snapshot):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")
                               and (Path(folder) / d).resolve() != skip)
        for name in sorted(names):
            path = Path(folder) / name
            rel = path.relative_to(snapshot).as_posix()
            if name.startswith("."):
                continue
            if name.endswith(".parquet"):
                shards.append(discover(path, rel))
            elif len(_parts(rel)) == 1:
                skipped.append(rel)  # the dataset card, the release's manifest, .gitattributes
            else:
                others.append((path, rel))
    if not shards and not others:
        raise PrepareError(f"{snapshot} holds no parquet shards and no files: is it the snapshot folder "
                           "(python -m vlpet prepare download archive --to DIR)?")
    bases = {}
    for _, rel in others:
        parts = _parts(rel)
        hit = next((i for i, p in enumerate(parts[:-1]) if _canonical(p)), None)
        if hit is not None:
            base = "/".join(parts[:hit])
            bases[base] = bases.get(base, 0) + 1
    base = max(bases, key=bases.get) if bases else ""
    files = []
    for path, rel in others:
        parts = _parts(rel)
        hit = next((i for i, p in enumerate(parts[:-1]) if _canonical(p)), None)
        if hit is not None:
            dest = [_canonical(parts[hit]), *parts[hit + 1:]]
        elif base and rel.startswith(base + "/"):
            dest = _parts(rel[len(base) + 1:])
        else:
            dest = parts
        if dest[0].lower() in (FEATURES_TYPO,):
            dest[0] = FEATURES_DIR
        dest = [FEATURES_DIR if p == FEATURES_TYPO else p for p in dest]
        if ".." in dest:
            raise PrepareError(f"{rel}: a path that leaves the tree; refused")
        if keep is not None and dest[0] not in keep:
            skipped.append(rel)
            continue
        files.append((path, "/".join(dest)))
    if keep is not None:
        for shard in shards:
            shard.folders = [f if f.split("/")[0] in keep else None for f in shard.folders]
    seen: dict[tuple[str, str], str] = {}
    shapes: dict[str, tuple] = {}
    for shard in shards:
        for folder, img_id in zip(shard.folders, shard.ids):
            if folder is None:
                continue
            if (folder, img_id) in seen:
                raise PrepareError(f"image '{img_id}' of {folder} is in two shards (or twice in one): "
                                   f"{seen[folder, img_id]} and {shard.rel}")
            seen[folder, img_id] = shard.rel
            if shard.kind == "features":
                got = shapes.setdefault(folder, (shard.shape, shard.dtype, shard.rel))
                if got[:2] != (shard.shape, shard.dtype):
                    raise PrepareError(f"{folder}: {shard.rel} holds {shard.dtype}{shard.shape} features but "
                                       f"{got[2]} holds {got[1]}{got[0]}; one folder needs one shape")
    dests = {}
    for path, dest in files:
        if dest in dests:
            raise PrepareError(f"two snapshot files go to {dest}: {dests[dest]} and {path}")
        dests[dest] = path
    return Plan(shards, files, skipped)


def _key(plan: Plan, layout: str) -> str:
    text = json.dumps([layout, [(s.rel, s.path.stat().st_size, s.folders, s.ids) for s in plan.shards]])
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# writing


def _write_json_atomic(path: Path, obj) -> None:
    from ..features.files import write_atomic

    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj)))


def copy_files(files: list[tuple[Path, str]], out: Path) -> int:
    """Copy each file to ``out/<dest>`` (atomically; identical files are left alone; a different existing file is
    an error raised before anything is copied)."""
    conflicts = [dest for src, dest in files if (out / dest).is_file() and not filecmp.cmp(src, out / dest, False)]
    if conflicts:
        raise PrepareError(f"{len(conflicts)} file(s) under {out} differ from the snapshot's and would be replaced, "
                           f"e.g. {out / conflicts[0]}: move them away or choose another --out")
    from ..features.files import write_atomic

    copied = 0
    for src, dest in files:
        target = out / dest
        if target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, lambda tmp, src=src: shutil.copyfile(src, tmp))
        copied += 1
    return copied


def grid_rows(column, shard: Shard, start: int):
    """(k, rows, channels) array of one record batch's feature column, the stored bits unchanged."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count:
        raise PrepareError(f"{shard.rel}: row {start + column.is_null().to_pylist().index(True)} has no features")
    rows, channels = shard.shape
    values = column
    while pa.types.is_list(values.type) or pa.types.is_large_list(values.type) or \
            pa.types.is_fixed_size_list(values.type):
        if not pa.types.is_fixed_size_list(values.type):
            lengths = np.asarray(pc.list_value_length(values))
            want = rows if values is column else channels
            if (lengths != want).any():
                bad = int(np.argmax(lengths != want))
                raise PrepareError(f"{shard.rel}: a row near {start + bad} has {lengths[bad]} feature values where "
                                   f"the first row has {want}")
        values = values.flatten()
    flat = values.to_numpy(zero_copy_only=False)
    if flat.size != len(column) * rows * channels:
        raise PrepareError(f"{shard.rel}: rows {start}..{start + len(column) - 1} hold {flat.size} feature values, "
                           f"not {len(column)} x {rows} x {channels}")
    return flat.reshape(len(column), rows, channels)


def _batches(shard: Shard):
    import pyarrow.parquet as pq

    start = 0
    for batch in pq.ParquetFile(shard.path).iter_batches(batch_size=BATCH_ROWS, columns=[shard.column]):
        yield start, batch.column(0)
        start += batch.num_rows


def _h5_equal(path: Path, img_id: str, rows) -> bool:
    import h5py
    import numpy as np

    try:
        with h5py.File(path, "r") as f:
            old = f[f"{img_id}/features"][...]
    except (OSError, KeyError):
        return False
    return old.dtype == rows.dtype and old.shape == rows.shape and np.array_equal(old.view("u1"), rows.view("u1"))


def write_h5(path: Path, img_id: str, rows) -> None:
    """``<img_id>/features`` = rows, contiguous and uncompressed (the release's format), written atomically."""
    import h5py

    from ..features.files import write_atomic

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_group(img_id)["features"] = rows

    write_atomic(path, write)


def write_images(shard: Shard, out: Path) -> int:
    """The image files of an image shard (``<task>/images/<id><suffix>``), atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..features.files import write_atomic

    column = pq.ParquetFile(shard.path).read(columns=[shard.column]).column(0).combine_chunks()
    struct = pa.types.is_struct(column.type)
    blobs = column.field("bytes") if struct else column
    names = [column.type.field(i).name for i in range(column.type.num_fields)] if struct else []
    paths = column.field("path").to_pylist() if "path" in names else [None] * len(column)
    written = 0
    for row, (folder, img_id) in enumerate(zip(shard.folders, shard.ids)):
        if folder is None:
            continue
        suffix = Path(paths[row] or "").suffix
        suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix) else ".png"
        target = out / folder / f"{img_id}{suffix}"
        data = blobs[row].as_py()
        if target.is_file() and target.read_bytes() == data:
            continue
        if target.is_file():
            raise PrepareError(f"{target} differs from image '{img_id}' of {shard.rel}: move it away first")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, lambda tmp: tmp.write_bytes(data))
        written += 1
    return written


def convert(snapshot: str | Path, out: str | Path, layout: str = "packed", tasks: list[str] | None = None,
            progress: bool = False, workers: int = 1) -> dict:
    """Turn a snapshot into the datasets tree at ``out``; returns a summary (folders, rows, files). ``workers``
    processes convert shards side by side (decoding a shard's nested lists is the slow part: ≈200 rows/s per core)."""
    from tqdm.auto import tqdm

    from ..features.files import remove_stale_temps

    snapshot, out = Path(snapshot), Path(out)
    plan = plan_snapshot(snapshot, tasks, out)
    out.mkdir(parents=True, exist_ok=True)
    targets = {out} | {(out / dest).parent for _, dest in plan.files} | {
        out / f for s in plan.shards for f in set(s.folders) if f is not None}
    for folder in targets:  # what a killed run left: .<name>.tmp-<pid> of processes that are gone
        remove_stale_temps(folder)
    copied = copy_files(plan.files, out)
    key = _key(plan, layout)
    state_path = out / PROGRESS
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    fresh = state.get("key") != key
    done = set() if fresh else set(state.get("done", []))
    features = [s for s in plan.shards if s.kind == "features"]
    folders: dict[str, list[str]] = {}
    for shard in features:
        for folder, img_id in zip(shard.folders, shard.ids):
            if folder is not None:
                folders.setdefault(folder, []).append(img_id)
    summary = {"layout": layout, "copied_files": copied, "files": len(plan.files), "folders": {},
               "resumed_shards": len(done), "skipped": plan.skipped}
    writers, offsets = {}, {}
    try:
        if layout == "packed":
            writers, offsets, done = _open_packed(plan, folders, out, fresh, done)
        todo = [s for s in plan.shards if s.rel not in done]
        total = sum(sum(f is not None for f in s.folders) for s in todo)
        sinks = {folder: writer.rows_spec() for folder, writer in writers.items()}
        jobs = [(shard, layout, out, sinks, offsets.get(shard.rel, {})) for shard in todo]
        with tqdm(total=total, unit="img", desc="archive", disable=not progress, dynamic_ncols=True) as bar:
            for shard in _run_jobs(jobs, workers):
                done.add(shard.rel)
                _write_json_atomic(state_path, {"key": key, "layout": layout, "done": sorted(done)})
                bar.update(sum(f is not None for f in shard.folders))
        for folder, ids in folders.items():
            if folder in writers:
                writers[folder].commit(ids)
            shape = next(s.shape for s in features if folder in s.folders)
            summary["folders"][folder] = {"images": len(ids), "shape": list(shape)}
    finally:
        for writer in writers.values():
            writer.close()
    state_path.unlink(missing_ok=True)
    summary["images"] = sum(1 for s in plan.shards if s.kind == "images" for f in s.folders if f is not None)
    return summary


def _packed_equal(folder: Path, ids: list[str], shape: tuple, dtype) -> bool:
    """Whether ``folder/packed`` already holds exactly these ids in this order, with this shape."""
    import numpy as np

    index, array = folder / PACKED / INDEX, folder / PACKED / ARRAY
    try:
        same = json.loads(index.read_text()) == ids
        old = np.load(array, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return same and old.shape == shape and old.dtype == dtype


def _open_packed(plan: Plan, folders: dict, out: Path, fresh: bool, done: set):
    """A PackedWriter per folder (resumed from its partial folder when the progress file matches) and, per shard,
    the first destination row of its rows in each folder."""
    from .pack import PackedWriter

    shapes = {}
    offsets: dict[str, dict[str, int]] = {}
    filled: dict[str, int] = {}
    for shard in plan.shards:
        if shard.kind != "features":
            continue
        offsets[shard.rel] = {}
        for folder in dict.fromkeys(f for f in shard.folders if f is not None):
            offsets[shard.rel][folder] = filled.get(folder, 0)
            filled[folder] = filled.get(folder, 0) + shard.folders.count(folder)
            shapes[folder] = (len(folders[folder]), *shard.shape), shard.dtype
    existing = [f for f in folders if (out / f / PACKED / INDEX).is_file()]
    for folder in existing:
        (shape, dtype) = shapes[folder]
        if not _packed_equal(out / folder, folders[folder], shape, dtype):
            raise PrepareError(f"{out / folder / 'packed'} exists and differs from the snapshot's features: move it "
                               "away (or delete it) and run again")
    writers = {}
    for folder, (shape, dtype) in shapes.items():
        if folder in existing:
            continue
        partial = out / folder / PARTIAL
        if fresh and partial.exists():
            shutil.rmtree(partial)
        (out / folder).mkdir(parents=True, exist_ok=True)
        writers[folder] = PackedWriter(out / folder, shape, dtype, temp=partial)
        if not writers[folder].resumed:  # the partial array is gone: its shards must be written again
            done = {rel for rel in done if folder not in offsets.get(rel, {})}
    return writers, offsets, done


def convert_shard(shard: Shard, layout: str, out: Path, sinks: dict, offsets: dict[str, int]) -> Shard:
    """One shard into the tree (in this process or a worker); returns it once its rows are on disk."""
    if shard.kind == "images":
        write_images(shard, out)
    elif layout == "packed":
        _pack_shard(shard, sinks, offsets)
    else:
        _h5_shard(shard, out)
    return shard


def _run_jobs(jobs: list[tuple], workers: int):
    """Yield each job's shard when it is done: in order in this process, or as they finish in ``workers``
    processes (a failure in one stops the rest: pending jobs are cancelled, the error is raised here)."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield convert_shard(*job)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(convert_shard, *job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _pack_shard(shard: Shard, sinks: dict, offsets: dict[str, int]) -> None:
    import numpy as np

    from .pack import RowWriter

    folders = np.array([f or "" for f in shard.folders], dtype=object)
    # destination row of every shard row in its folder: consecutive, in shard order
    dest = np.zeros(len(folders), dtype=np.int64)
    for folder, first in offsets.items():
        mask = folders == folder
        dest[mask] = first + np.arange(int(mask.sum()))
    writers = {folder: RowWriter(*sinks[folder]) for folder in offsets if folder in sinks}
    try:
        for start, column in _batches(shard):
            rows = grid_rows(column, shard, start)
            part = folders[start:start + len(rows)]
            for folder, writer in writers.items():
                mask = part == folder
                if mask.any():
                    writer.write(int(dest[start:start + len(rows)][mask][0]), rows[mask])
        for writer in writers.values():
            writer.flush()
    finally:
        for writer in writers.values():
            writer.close()


def _h5_shard(shard: Shard, out: Path) -> None:
    for start, column in _batches(shard):
        rows = grid_rows(column, shard, start)
        for i in range(len(rows)):
            folder, img_id = shard.folders[start + i], shard.ids[start + i]
            if folder is None:
                continue
            target = out / folder / f"{img_id}.h5"
            if target.is_file():
                if _h5_equal(target, img_id, rows[i]):
                    continue
                raise PrepareError(f"{target} exists and differs from image '{img_id}' of {shard.rel}: move it "
                                   "away first")
            target.parent.mkdir(parents=True, exist_ok=True)
            write_h5(target, img_id, rows[i])


def parse_tasks(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    tasks = [t for v in values for t in v.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise PrepareError(f"--tasks: unknown task(s) {', '.join(unknown)} (choose from {', '.join(TASKS)})")
    return tasks


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise PrepareError(f"--workers must be >= 1, got {args.workers}")
    summary = convert(args.snapshot, args.out, args.layout, parse_tasks(args.tasks), progress=not args.no_progress,
                      workers=args.workers)
    for folder, info in summary["folders"].items():
        how = "packed/features.npy" if args.layout == "packed" else "<img_id>.h5 files"
        print(f"{folder}: {info['images']:,} images {tuple(info['shape'])} -> {how}")
    if summary["images"]:
        print(f"images: {summary['images']:,} files")
    print(f"copied {summary['copied_files']} of {summary['files']} files"
          + (f"; not copied: {len(summary['skipped'])} (top-level or other tasks)" if summary["skipped"] else "")
          + (f"; resumed after {summary['resumed_shards']} shards" if summary["resumed_shards"] else ""))
    print(f"wrote {args.out}")
    return 0
