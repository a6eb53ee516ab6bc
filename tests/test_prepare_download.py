"""``prepare download`` against a local HTTP server on 127.0.0.1: resumed transfers (dropped connection, leftover
``.part``, a server that ignores Range), checksums (a wrong one is an error and the file is not used), unpacking,
``--dry-run``, gone / by-request sources, HTTP errors and hub weights (huggingface_hub stubbed)."""

import hashlib
import io
import json
import subprocess
import sys
import threading
import types
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vlpet.__main__ import main
from vlpet.prepare import manifest
from vlpet.prepare.download import DownloadError, fetch
from vlpet.prepare.raw import file_digest
from vlpet.prepare.manifest import Item

BODY = bytes(range(256)) * 4096  # 1 MiB


class Server:
    """Serves ``files`` (path → bytes) with Range support; ``cut[path] = n`` drops the next response after n bytes;
    ``ignore_range`` answers 200 to Range requests; ``requests`` records (path, Range header)."""

    def __init__(self):
        self.files, self.cut, self.ignore_range, self.requests = {}, {}, False, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path not in server.files:
                    self.send_error(404)
                    return
                body, start = server.files[self.path], 0
                wanted = self.headers.get("Range")
                if wanted and not server.ignore_range:
                    start = int(wanted.split("=")[1].rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                limit = server.cut.pop(self.path, None)
                self.wfile.write(body[start:] if limit is None else body[start:start + limit])
                if limit is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"


@pytest.fixture
def server():
    s = Server()
    s.files["/f.bin"] = BODY
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def sha256(data):
    return ("sha256", hashlib.sha256(data).hexdigest())


def test_dropped_connection_resumes_with_a_range_request(server, tmp_path):
    server.cut["/f.bin"] = 300_000
    dest = fetch(server.url("/f.bin"), tmp_path / "f.bin", sha256(BODY), backoff=0)
    assert dest.read_bytes() == BODY and not (tmp_path / "f.bin.part").exists()
    assert server.requests == [("/f.bin", None), ("/f.bin", "bytes=300000-")]


def test_leftover_part_from_an_earlier_run_resumes(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(BODY[:123_456])
    fetch(server.url("/f.bin"), tmp_path / "f.bin", sha256(BODY), backoff=0)
    assert (tmp_path / "f.bin").read_bytes() == BODY
    assert server.requests == [("/f.bin", "bytes=123456-")]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "f.bin.part").write_bytes(b"x" * 1000)
    fetch(server.url("/f.bin"), tmp_path / "f.bin", sha256(BODY), backoff=0)
    assert (tmp_path / "f.bin").read_bytes() == BODY


def test_wrong_checksum_is_an_error_and_the_file_is_not_used(server, tmp_path):
    with pytest.raises(DownloadError, match="differs from the published"):
        fetch(server.url("/f.bin"), tmp_path / "f.bin", ("sha256", "0" * 64), backoff=0)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f.bin").write_bytes(b"tampered")  # an existing file is verified too, and fetched again when wrong
    assert fetch(server.url("/f.bin"), tmp_path / "f.bin", sha256(BODY), backoff=0).read_bytes() == BODY


def test_git_blob_id_is_what_git_prints(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b'{"identifier": "dev-1-0-0"}\n')
    git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True)
    assert file_digest(path, "git-blob") == git.stdout.strip()


def test_too_many_drops_and_http_errors_are_one_clear_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(server.url("/missing.zip"), tmp_path / "m.zip", backoff=0)
    server.files["/g.bin"] = BODY
    server.cut["/g.bin"] = 10
    with pytest.raises(DownloadError, match="run the same command again"):
        fetch(server.url("/g.bin"), tmp_path / "g.bin", retries=0, backoff=0)
    assert (tmp_path / "g.bin.part").stat().st_size == 10 and not (tmp_path / "g.bin").exists()


def zipped(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def source(server, monkeypatch):
    """A fake 'vqa' source: one zip with a nested original file, one gone item, one 404."""
    archive = zipped({"v2_Q/v2_OpenEnded_mscoco_train2014_questions.json": json.dumps({"questions": []})})
    server.files["/q.zip"] = archive
    items = (Item("q.zip", "vqa", "questions", server.url("/q.zip"), len(archive), sha256(archive), unpack=True),
             Item("gone.zip", "vqa", "a gone file", "http://example.invalid/gone.zip", status="gone", note="mirror X"),
             Item("img.zip", "coco", "images", server.url("/img.zip"), 5 * 10**9, images=True))
    monkeypatch.setitem(manifest.SOURCES, "vqa", items)
    return items


def test_download_unpacks_reports_gone_and_failed(source, server, tmp_path, capsys):
    assert main(["prepare", "download", "vqa", "--to", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "NOT FETCHED gone.zip" in out and "mirror X" in out and "FAILED img.zip" in out and "HTTP 404" in out
    assert (tmp_path / "vqa/q/v2_Q/v2_OpenEnded_mscoco_train2014_questions.json").is_file()
    server.requests.clear()
    assert main(["prepare", "download", "vqa", "--to", str(tmp_path), "--no-images"]) == 0
    assert server.requests == []  # present and verified: nothing fetched again
    (tmp_path / "vqa/q.zip").unlink()  # an unpacked archive may be deleted
    assert main(["prepare", "download", "vqa", "--to", str(tmp_path), "--no-images"]) == 0
    assert server.requests == []


def test_dry_run_lists_files_and_sizes_and_fetches_nothing(source, server, tmp_path, capsys):
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco/img.zip.part").write_bytes(b"x" * 2000)
    assert main(["prepare", "download", "vqa", "--to", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert server.requests == [] and sorted(p.name for p in tmp_path.rglob("*")) == ["coco", "img.zip.part"]
    assert "q.zip" in out and f"{len(server.files['/q.zip'])} B" in out and "to fetch" in out
    assert "GONE" in out and "5.0 GB" in out and "partial (2.0 KB)" in out and "to fetch: 2 files" in out


def test_real_manifest_names_every_source_and_its_status(capsys, tmp_path):
    for source in ("vqa", "gqa", "nlvr", "caption", "weights"):
        assert main(["prepare", "download", source, "--to", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "caption_datasets.zip" in out and "404 since 2023-09" in out and "gpantaz/karpathy_split" in out
    assert "BY REQUEST" in out and "goo.gl/forms" in out and "nlvr@googlegroups.com" in out
    assert "timm/resnet101_clip.openai" in out and "questions1.2.zip" in out


def test_weights_go_through_huggingface_hub(monkeypatch, tmp_path):
    calls = []

    def hf_hub_download(repo_id, filename, local_dir):
        calls.append((repo_id, filename, local_dir))
        path = local_dir / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
        return str(path)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=hf_hub_download))
    assert main(["prepare", "download", "weights", "--to", str(tmp_path)]) == 0
    assert calls == [("timm/resnet101_clip.openai", "model.safetensors", tmp_path / "weights")]  # the tower

    def offline(**kwargs):
        raise OSError("no network")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=offline))
    assert main(["prepare", "download", "weights", "--to", str(tmp_path)]) == 1


def test_downloaded_originals_feed_prepare(server, tmp_path, monkeypatch):
    """download nlvr (git blob ids checked) then prepare nlvr from the same RAW."""
    from pathlib import Path

    sample = Path(__file__).parent / "fixtures/prepare-visible/raw/nlvr2/data"
    items = []
    for name in ("train.json", "dev.json", "test1.json"):
        data = (sample / name).read_bytes()
        server.files[f"/{name}"] = data
        blob = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
        items.append(Item(name, "nlvr", name, server.url(f"/{name}"), checksum=("git-blob", blob), provides=(name,)))
    monkeypatch.setitem(manifest.SOURCES, "nlvr", tuple(items))
    assert main(["prepare", "download", "nlvr", "--to", str(tmp_path / "raw")]) == 0
    assert main(["prepare", "nlvr", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]) == 0
    assert len(json.loads((tmp_path / "out/nlvr/valid.json").read_text())) == 20
