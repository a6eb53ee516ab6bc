"""Bad input on the data path (issue 19, item 5), each one a test: a full disk for pack and extract (one line, no
temp folder), temp files of killed runs removed by later runs, SIGTERM, downloads never keeping an unverified body
(no Content-Length, a wrong Content-Range, an invalid file found or fetched), 404 / redirect-loop messages, the
Karpathy split from its mirrors (order, count validation; a local server on 127.0.0.1 speaks the Hub's resolve
protocol), unsafe image ids, a feature file of the wrong shape, and ``extract --ids-from``."""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import os
import signal
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest

from vlpet.__main__ import main
from vlpet.prepare import download, manifest, pack
from vlpet.prepare.download import DownloadError, fetch

FEATS = "clip_features/data_clip_RN101_att"
DEAD_PID = 4_000_000  # above any pid_max: no such process


class Server:
    """127.0.0.1: ``routes[path]`` = body bytes or a dict (status, body, headers, no_length, cut_once, range_from);
    ``requests`` records (method, path, Range). Paths under ``/datasets/<repo>/resolve/main/`` serve the Hub's
    resolve protocol (HEAD with ETag and X-Repo-Commit)."""

    def __init__(self):
        self.routes, self.requests = {}, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def reply(self, head: bool):
                server.requests.append((self.command, self.path, self.headers.get("Range")))
                spec = server.routes.get(self.path)
                if spec is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                spec = spec if isinstance(spec, dict) else {"body": spec}
                body, status = spec.get("body", b""), spec.get("status", 200)
                start = 0
                if status == 200 and self.headers.get("Range") and not head:
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    status = 206
                    shown = spec.get("range_from", start)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {shown}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(status)
                for key, value in spec.get("headers", {}).items():
                    self.send_header(key, value)
                if status in (200, 206):
                    self.send_header("ETag", f'"{len(body)}-{hash(body) & 0xffff}"')
                    self.send_header("X-Repo-Commit", "0" * 40)
                payload = body[start:]
                cut = spec.pop("cut_once", None)
                if cut is not None:
                    payload = payload[:cut]
                if not (spec.get("no_length") or cut is not None and spec.get("no_length_when_cut", True)):
                    self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if not head:
                    self.wfile.write(payload)

            def do_GET(self):
                self.reply(False)

            def do_HEAD(self):
                self.reply(True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"

    def url(self, path):
        return self.base + path


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


# --------------------------------------------------------------------------------------------------------------
# downloads


JSON_BODY = json.dumps({"questions": list(range(3000))}).encode()


def test_body_cut_short_without_length_is_never_kept_and_is_fetched_again(server, tmp_path, capsys):
    server.routes["/a.json"] = {"body": JSON_BODY, "cut_once": 100}  # first answer: 100 bytes, no length, closed
    dest = fetch(server.url("/a.json"), tmp_path / "a.json", backoff=0)
    assert dest.read_bytes() == JSON_BODY and "not a valid JSON file" in capsys.readouterr().out
    assert [r[1] for r in server.requests] == ["/a.json", "/a.json"]
    server.routes["/b.zip"] = {"body": JSON_BODY, "no_length": True}  # never a zip: refused twice, nothing kept
    with pytest.raises(DownloadError, match="not a valid zip file.*fetched twice"):
        fetch(server.url("/b.zip"), tmp_path / "b.zip", backoff=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_invalid_file_found_from_an_earlier_run_is_fetched_again(server, tmp_path, capsys):
    server.routes["/a.json"] = JSON_BODY
    (tmp_path / "a.json").write_text('{"questions": [1, 2')  # truncated by an older version
    assert fetch(server.url("/a.json"), tmp_path / "a.json", backoff=0).read_bytes() == JSON_BODY
    assert "fetching it again" in capsys.readouterr().out


def test_206_starting_elsewhere_is_refused_and_the_part_is_kept(server, tmp_path):
    server.routes["/a.json"] = {"body": JSON_BODY, "range_from": 0}  # answers 206 but from byte 0
    part = tmp_path / "a.json.part"
    part.write_bytes(JSON_BODY[:1000])
    with pytest.raises(DownloadError, match="asked for the bytes from 1,000 on.*refused"):
        fetch(server.url("/a.json"), tmp_path / "a.json", backoff=0)
    assert part.read_bytes() == JSON_BODY[:1000] and not (tmp_path / "a.json").exists()


def test_404_and_redirect_loop_do_not_say_resume(server, tmp_path, monkeypatch, capsys):
    server.routes["/loop"] = {"status": 302, "headers": {"Location": "/loop"}}
    with pytest.raises(DownloadError, match="redirect loop") as err:
        fetch(server.url("/loop"), tmp_path / "x.json", backoff=0)
    assert "resume" not in str(err.value) and not err.value.resumable
    with pytest.raises(DownloadError, match="404.*not at this address") as err:
        fetch(server.url("/gone.json"), tmp_path / "x.json", backoff=0)
    assert "resume" not in str(err.value)
    items = (manifest.Item("gone.json", "vqa", "a moved file", server.url("/gone.json")),)
    monkeypatch.setitem(manifest.SOURCES, "vqa", items)
    assert main(["prepare", "download", "vqa", "--to", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAILED gone.json" in out and "resume" not in out


# --------------------------------------------------------------------------------------------------------------
# the Karpathy split from its mirrors


def karpathy_json(train: int, val: int, test: int) -> bytes:
    images = [{"split": split, "filename": f"COCO_val2014_{len(split) * 1000 + i:012d}.jpg", "cocoid": i,
               "sentences": [{"raw": "a cat"}]}
              for split, n in (("train", train - 1), ("restval", 1), ("val", val), ("test", test)) for i in range(n)]
    return json.dumps({"images": images, "dataset": "coco"}).encode()


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(f"caption_datasets/{name}", data)
    return buffer.getvalue()


@pytest.fixture
def mirrors(server, monkeypatch):
    """The real Karpathy item with its first (dead) URL on the local server, the Hub at the local server, and
    small expected counts."""
    monkeypatch.setattr(manifest, "KARPATHY_COUNTS", {"train": 3, "val": 2, "test": 2})
    monkeypatch.setattr(download, "HF_ENDPOINT", server.base)
    first = dataclasses.replace(manifest.KARPATHY.mirrors[0], url=server.url("/karpathy/caption_datasets.zip"))
    item = dataclasses.replace(manifest.KARPATHY, mirrors=(first, *manifest.KARPATHY.mirrors[1:]))
    monkeypatch.setitem(manifest.SOURCES, "caption", (item,))
    return item


GPANTAZ = "/datasets/gpantaz/karpathy_split/resolve/main/caption_datasets.zip"
FLAMINGO = "/datasets/openflamingo/eval_benchmark/resolve/main/mscoco_karpathy/karpathy_coco.json"


def test_karpathy_mirrors_in_order_each_validated_by_counts(server, mirrors, tmp_path, capsys):
    good = karpathy_json(3, 2, 2)
    server.routes[GPANTAZ] = zipped("dataset_coco.json", karpathy_json(3, 1, 2))  # one val image short
    server.routes[FLAMINGO] = good
    assert main(["prepare", "download", "caption", "--to", str(tmp_path / "raw")]) == 0
    assert (tmp_path / "raw/caption/dataset_coco.json").read_bytes() == good
    order = [path for _, path, _ in server.requests]
    firsts = [order.index(p) for p in ("/karpathy/caption_datasets.zip", GPANTAZ, FLAMINGO)]
    assert firsts == sorted(firsts)
    assert sorted(p.name for p in (tmp_path / "raw/caption").iterdir()) == ["dataset_coco.json"]  # nothing else kept
    assert "openflamingo/eval_benchmark" in capsys.readouterr().out
    # the rebuilt split feeds prepare caption
    assert main(["prepare", "caption", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]) == 0
    # a later run validates the file in place and fetches nothing
    server.requests.clear()
    assert main(["prepare", "download", "caption", "--to", str(tmp_path / "raw")]) == 0 and server.requests == []


def test_karpathy_failure_lists_every_source_and_why(server, mirrors, tmp_path, capsys):
    server.routes["/karpathy/caption_datasets.zip"] = {"status": 404}
    server.routes[GPANTAZ] = zipped("dataset_coco.json", karpathy_json(3, 2, 1))
    server.routes[FLAMINGO] = good = karpathy_json(3, 2, 2)[:-10]  # cut short
    assert main(["prepare", "download", "caption", "--to", str(tmp_path / "raw")]) == 1
    out = capsys.readouterr().out
    assert good and "tried 3" in out and "HTTP 404" in out and "holds 3 / 2 / 1" in out and "not 3 / 2 / 2" in out
    assert "karpathy_coco.json" in out and "cannot read" in out and "Kaggle" in out
    assert not list((tmp_path / "raw").rglob("*.json")) and not list((tmp_path / "raw").rglob("*.zip"))


# --------------------------------------------------------------------------------------------------------------
# full disk, killed runs, SIGTERM


def h5_folder(folder: Path, n: int = 3, dim: int = 8) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        with h5py.File(folder / f"img{i}.h5", "w") as f:
            f.create_group(f"img{i}")["features"] = np.full((49, dim), i, np.float16)


def test_pack_on_a_full_disk_is_one_line_and_leaves_no_temp_folder(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "root/COCO" / FEATS
    h5_folder(folder)
    (folder / f".packed.tmp-{DEAD_PID}-abc").mkdir()  # left by killed runs (new and old names)
    (folder / ".packed.tmp-x1y2z3").mkdir()
    calls = []

    def full(f, data):
        calls.append(len(data))
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        f.write(data)

    monkeypatch.setattr(pack, "write_bytes", full)
    assert main(["prepare", "pack", "--root", str(tmp_path / "root"), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disk full" in err and "run the same command again" in err
    assert sorted(p.name for p in folder.iterdir()) == ["img0.h5", "img1.h5", "img2.h5"]

    def no_room(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_room)  # the space is reserved first: refused before any row
    calls.clear()
    assert main(["prepare", "pack", "--root", str(tmp_path / "root"), "--no_progress"]) == 2
    assert "not enough disk space" in capsys.readouterr().err and len(calls) == 0
    assert not list(folder.glob(".packed*")) and not (folder / "packed").exists()


def test_extract_on_a_full_disk_is_one_line_and_leaves_no_temp_file(tmp_path, monkeypatch, capsys):
    from test_features_image import TINY, randomised, write_images
    from vlpet.features import image
    from vlpet.features.resnet import ModifiedResNet

    write_images(tmp_path / "img", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / f".img_0.h5.tmp-{DEAD_PID}").write_bytes(b"left by a killed run")
    monkeypatch.setattr(image.GridExtractor, "load",
                        classmethod(lambda cls, *a: cls(randomised(ModifiedResNet(**TINY)), "cpu")))
    real = image.write_atomic

    def full(path, write):
        def failing(tmp):
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        real(path, failing)

    monkeypatch.setattr(image, "write_atomic", full)
    code = main(["extract", "--images", str(tmp_path / "img"), "--out", str(out), "--weights", "unused.pt",
                 "--workers", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "disk full" in err
    assert list(out.iterdir()) == []


def test_killed_prepare_temp_files_are_removed_by_the_next_run(tmp_path, capsys):
    raw = Path(__file__).parent / "fixtures/prepare-visible/raw"
    out = tmp_path / "out"
    (out / "nlvr").mkdir(parents=True)
    stale = out / "nlvr" / f".train.json.tmp{DEAD_PID}"
    stale.write_text("[")
    assert main(["prepare", "nlvr", "--raw", str(raw), "--out", str(out)]) == 0
    assert not stale.exists() and f"removed {stale}" in capsys.readouterr().out


def test_sigterm_says_what_happened_and_removes_the_staged_files(tmp_path, monkeypatch, capsys):
    from vlpet.prepare import nlvr

    raw = Path(__file__).parent / "fixtures/prepare-visible/raw"
    out = tmp_path / "out"

    def killed(index, out_root, staged):
        staged.write_json(out_root / "nlvr" / "train.json", [1, 2, 3])
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(nlvr, "prepare_nlvr", killed)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["prepare", "nlvr", "--raw", str(raw), "--out", str(out)]) == 143
    err = capsys.readouterr().err
    assert "stopped by SIGTERM" in err and "temporary files were removed" in err
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]
    assert signal.getsignal(signal.SIGTERM) == before


# --------------------------------------------------------------------------------------------------------------
# unsafe ids, wrong-shape feature files, --ids-from


@pytest.fixture
def tree(tmp_path):
    from vlpet.synth.image import write_synthetic

    root = tmp_path / "datasets"
    write_synthetic(root, n_train=4, n_val=2, n_test=2, feat_dim=8)
    return root


@pytest.fixture(scope="module")
def tok():
    from vlpet.data.tokenizer import build_tokenizer

    return build_tokenizer("bart", ["vqa", ":"])


@pytest.mark.parametrize("bad", ["../../etc/passwd", "a/b", ".."])
def test_unsafe_image_id_in_an_annotation_file_is_refused_naming_it(tree, tok, bad):
    from vlpet.data.layout import DataError, DataLayout
    from vlpet.data.vqa import VQADataset

    path = tree / "vqa/karpathy_val.json"
    entries = json.loads(path.read_text())
    entries[1]["img_id"] = bad
    path.write_text(json.dumps(entries))
    with pytest.raises(DataError, match="refused") as err:
        VQADataset(DataLayout(tree), "karpathy_val", tok)
    assert str(path) in str(err.value) and "entry 1" in str(err.value)


def test_one_feature_file_of_the_wrong_shape_is_named_not_the_task(tree, tok):
    from vlpet.data.layout import DataError, DataLayout
    from vlpet.data.vqa import VQADataset
    from vlpet.train.data import check_split

    ds = VQADataset(DataLayout(tree), "karpathy_train", tok)
    img_id = ds.data[0]["img_id"]
    bad = tree / "COCO" / FEATS / f"{img_id}.h5"
    with h5py.File(bad, "w") as f:
        f.create_group(img_id)["features"] = np.zeros((49, 16), np.float16)
    assert ds.data[-1]["img_id"] != img_id
    with pytest.raises(DataError) as err:
        check_split(ds, "vqa", "train", 8)
    message = str(err.value)
    assert str(bad) in message and "one of them is wrong" in message and "pass --feat_dim" not in message


def test_ids_from_restricts_the_walk(tmp_path, monkeypatch, capsys):
    from test_features_image import TINY, randomised, write_images
    from vlpet.features import image
    from vlpet.features.files import read_ids
    from vlpet.features.resnet import ModifiedResNet

    write_images(tmp_path / "img", 5)  # img_0 .. img_4
    (tmp_path / "train.json").write_text(json.dumps([{"img_id": "img_1", "sent": "?"}, {"img_id": "img_3"}]))
    (tmp_path / "valid.json").write_text(json.dumps([{"img0": "img_4", "img1": "img_1"}]))
    (tmp_path / "coco.json").write_text(json.dumps({"images": [{"filename": "img_0.jpg"}]}))
    (tmp_path / "ids.txt").write_text("# ids\nimg_2\n\nimg_9\n")
    monkeypatch.setattr(image.GridExtractor, "load",
                        classmethod(lambda cls, *a: cls(randomised(ModifiedResNet(**TINY)), "cpu")))
    argv = ["extract", "--images", str(tmp_path / "img"), "--out", str(tmp_path / "out"), "--weights", "unused.pt",
            "--workers", "0", "--no-progress", "--ids-from", str(tmp_path / "train.json"), str(tmp_path / "valid.json")]
    assert main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_1.h5", "img_3.h5", "img_4.h5"]
    assert json.loads(capsys.readouterr().out)["images"] == 3
    assert read_ids([tmp_path / "coco.json", tmp_path / "ids.txt"]) == {"img_0", "img_2", "img_9"}
    assert main([*argv[:-2], str(tmp_path / "ids.txt")]) == 0  # img_9 has no image: a warning says so
    assert "1 id(s) of --ids-from have no image" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps([{"img_id": "../x"}]))
    assert main([*argv[:-2], str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.json" in err and "refused" in err


def test_archive_that_does_not_unpack_is_fetched_again(server, tmp_path, monkeypatch, capsys):
    good = zipped("q.json", b"{}")
    bad = bytearray(good)
    bad[bad.index(b"{}")] = ord("[")  # same directory, damaged member: the CRC check fails while unpacking
    server.routes["/q.zip"] = bytes(bad)
    item = manifest.Item("q.zip", "vqa", "questions", server.url("/q.zip"), unpack=True)
    monkeypatch.setitem(manifest.SOURCES, "vqa", (item,))
    calls = []
    real = download.fetch

    def serve_good_the_second_time(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            server.routes["/q.zip"] = good
        return real(*args, **kwargs)

    monkeypatch.setattr(download, "fetch", serve_good_the_second_time)
    assert main(["prepare", "download", "vqa", "--to", str(tmp_path)]) == 0
    assert (tmp_path / "vqa/q/caption_datasets/q.json").read_text() == "{}" and len(calls) == 2
    assert "cannot be unpacked" in capsys.readouterr().out
