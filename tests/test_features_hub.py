"""``--pretrained``: the hub download of OpenAI's RN101 weights, against a local HTTP server on 127.0.0.1 that speaks
the hub's resolve protocol (no internet)."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest
import torch
from safetensors.torch import save

from test_features_image import TINY, one_thread, randomised, timm_names  # noqa: F401 (autouse fixture)
from vlpet.features.resnet import ModifiedResNet
from vlpet.features.weights import WeightsError, hub_weights, load_trunk


def serve(files: dict[str, bytes]):
    """A hub stand-in: HEAD/GET ``/<repo>/resolve/main/<name>`` for ``files``, 404 EntryNotFound otherwise."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, body: bool) -> None:
            name = self.path.rsplit("/", 1)[-1]
            if name not in files:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("X-Repo-Commit", "0" * 40)
            self.send_header("ETag", f'"{hashlib.sha256(files[name]).hexdigest()}"')
            self.send_header("Content-Length", str(len(files[name])))
            self.end_headers()
            if body:
                self.wfile.write(files[name])

        def do_HEAD(self):
            self.reply(False)

        def do_GET(self):
            self.reply(True)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_pretrained_takes_the_first_file_the_repo_holds(tmp_path):
    state = randomised(ModifiedResNet(**TINY), seed=5).state_dict()
    server = serve({"model.safetensors": save(timm_names(state))})  # only timm's tower file
    try:
        path = hub_weights(endpoint=f"http://127.0.0.1:{server.server_port}", cache_dir=tmp_path / "cache")
    finally:
        server.shutdown()
    assert path.name == "model.safetensors"
    loaded = load_trunk(path, **TINY).state_dict()
    for key, value in state.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)


def test_pretrained_without_weights_is_one_line(tmp_path):
    server = serve({})
    try:
        with pytest.raises(WeightsError) as err:
            hub_weights(endpoint=f"http://127.0.0.1:{server.server_port}", cache_dir=tmp_path / "cache")
    finally:
        server.shutdown()
    message = str(err.value)
    assert "\n" not in message and "timm/resnet101_clip.openai" in message and "--weights FILE" in message
