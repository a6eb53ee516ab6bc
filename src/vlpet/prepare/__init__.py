"""Rebuild the official ``datasets/`` tree from the original public files (data-prep spec).

``python -m vlpet prepare download SOURCE --to RAW`` fetches the originals (``download``, ``manifest``);
``python -m vlpet prepare {vqa,gqa,nlvr,caption,all} --raw RAW --out ROOT`` converts them, one module per source;
``python -m vlpet prepare check --root ROOT`` holds a tree to the published counts and formats (``check``).
"""
