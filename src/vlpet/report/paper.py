"""The paper's numbers (copied from the project's spec of the paper, paper.md §2.1, §2.3, §4.2), as data.

Each table maps (backbone family, method label) to ``(params %, {task: (mean, std)}, (avg mean, avg std))``; a
``None`` std is a number the source gives without one. Labels are the report's method labels (``labels.py``).

* ``table2``: VL-PET Table 2, image-text, BART-base and T5-base, three seeds, mean ± std; plus DoRA's published
  VL-BART row (DoRA, ICML 2024: NVlabs/DoRA ``image_video_text_understanding/README.md``, "DoRA Result", the
  paper's VL-BART image-text table): one seed, batch 300 (their ``scripts/image/dora.sh``), no std.
* ``table9``: VL-PET Table 9, VL-PET designs on Compacter and VL-Adapter, BART-base, three seeds.
* ``video``: the video-text table of VL-PET was not found; these are the CLIP-BART video rows of VL-Adapter
  (secondary source, one seed, no std), the only published video-text numbers for these methods.
"""

from __future__ import annotations

IMAGE = ("vqa", "gqa", "nlvr", "caption")
VIDEO = ("tvqa", "how2qa", "tvc", "yc2c")


def _rows(family: str, tasks: tuple[str, ...], text: str) -> dict:
    """Parse ``label | params | v1 s1 | v2 s2 | ... | avg s`` lines (``-`` for a missing std)."""
    rows = {}
    for line in text.strip().splitlines():
        label, params, *cells = (c.strip() for c in line.split("|"))
        pairs = [tuple(float(x) if x != "-" else None for x in cell.split()) for cell in cells]
        rows[(family, label)] = (float(params), dict(zip(tasks, pairs[:-1])), pairs[-1])
    return rows


TABLE2 = {**_rows("bart", IMAGE, """
Full Fine-tuning | 100 | 66.88 0.17 | 56.79 0.41 | 73.66 0.21 | 112.01 0.93 | 77.33 0.39
BitFit | 1.21 | 52.94 0.52 | 43.15 0.94 | 52.29 0.76 | 111.44 0.41 | 64.96 0.17
Prompt Tuning | 2.00 | 44.12 0.45 | 36.37 0.35 | 51.34 0.83 | 105.02 0.24 | 59.21 0.21
Compacter | 2.70 | 64.63 0.09 | 52.70 0.24 | 71.11 0.35 | 114.69 0.42 | 75.78 0.21
HyperFormer | 5.79 | 64.62 0.67 | 52.55 0.64 | 70.74 1.45 | 114.84 0.38 | 75.69 0.74
LoRA | 5.93 | 65.15 0.16 | 53.66 0.84 | 72.58 0.73 | 115.01 0.26 | 76.60 0.32
VL-Adapter | 4.18 | 65.76 0.28 | 54.16 0.44 | 73.19 0.71 | 114.61 0.26 | 76.93 0.25
VL-PET-small | 2.98 | 65.43 0.06 | 54.03 0.14 | 72.43 0.22 | 120.68 0.35 | 78.14 0.11
VL-PET-middleX | 2.98 | 65.54 0.09 | 54.53 0.15 | 72.66 0.17 | 120.72 0.51 | 78.37 0.14
VL-PET-middleY | 2.98 | 65.36 0.15 | 53.83 0.39 | 73.43 0.78 | 120.31 0.09 | 78.23 0.19
VL-PET-large | 4.16 | 66.17 0.27 | 55.11 0.17 | 73.43 0.35 | 122.03 0.46 | 79.18 0.14
"""), **_rows("t5", IMAGE, """
Full Fine-tuning | 100 | 67.10 0.10 | 56.30 0.30 | 74.30 0.40 | 112.20 0.30 | 77.50 0.30
BitFit | 0.83 | 55.10 0.20 | 45.50 0.20 | 51.70 1.10 | 101.20 0.20 | 63.40 0.10
Prompt Tuning | 1.26 | 47.40 0.70 | 40.60 0.40 | 51.00 0.40 | 96.10 0.90 | 58.80 0.60
LoRA | 7.54 | 63.70 0.20 | 53.30 0.10 | 70.00 0.30 | 110.30 0.40 | 74.30 0.10
VL-Adapter | 7.98 | 67.10 0.10 | 56.00 0.40 | 72.70 0.30 | 111.80 0.10 | 76.90 0.20
LST | 7.46 | 66.50 0.10 | 55.90 0.10 | 71.60 0.30 | 113.50 0.30 | 76.90 0.10
VL-PET-small | 4.51 | 65.88 0.31 | 54.96 1.01 | 72.64 0.09 | 120.05 0.41 | 78.38 0.37
VL-PET-middleX | 4.50 | 66.63 0.14 | 55.87 0.25 | 74.11 0.37 | 120.41 0.31 | 79.26 0.26
VL-PET-middleY | 4.50 | 66.62 0.20 | 55.87 0.13 | 73.91 0.45 | 120.26 0.40 | 79.17 0.08
VL-PET-large | 7.31 | 66.95 0.21 | 56.06 0.21 | 73.42 0.46 | 121.66 0.06 | 79.52 0.21
""")}

# DoRA's published VL-BART image-text row (one seed, batch 300, lr 1e-3, 20 epochs; not a VL-PET table row).
DORA_ROW = _rows("bart", IMAGE, """
DoRA | 5.96 | 65.8 - | 54.7 - | 73.1 - | 115.9 - | 77.4 -
""")
TABLE2.update(DORA_ROW)

TABLE9 = _rows("bart", IMAGE, """
Compacter | 2.70 | 64.63 0.09 | 52.70 0.24 | 71.11 0.35 | 114.69 0.42 | 75.78 0.21
Compacter + G_small + LW | 2.08 | 64.14 0.05 | 52.84 0.45 | 71.04 0.54 | 118.77 0.31 | 76.70 0.08
Compacter + G_middleX + LW | 2.07 | 64.35 0.10 | 53.10 0.73 | 70.57 0.44 | 119.02 0.37 | 76.76 0.17
Compacter + G_middleY + LW | 2.07 | 64.00 0.12 | 52.49 0.60 | 70.81 0.68 | 117.48 0.11 | 76.20 0.33
Compacter + G_large + LW | 3.28 | 65.60 0.15 | 54.05 0.30 | 71.66 0.17 | 119.55 0.23 | 77.72 0.15
VL-Adapter | 4.18 | 65.76 0.28 | 54.16 0.44 | 73.19 0.71 | 114.61 0.26 | 76.93 0.25
VL-Adapter + G_small + LW | 2.98 | 65.56 0.17 | 54.34 0.32 | 71.95 0.23 | 119.10 0.25 | 77.74 0.11
VL-Adapter + G_middleX + LW | 2.98 | 65.73 0.12 | 54.90 0.10 | 73.04 0.50 | 118.34 0.91 | 78.00 0.31
VL-Adapter + G_middleY + LW | 2.98 | 65.67 0.17 | 54.11 0.29 | 73.18 0.34 | 117.38 0.52 | 77.58 0.08
VL-Adapter + G_large + LW | 4.16 | 66.31 0.23 | 55.09 0.37 | 73.46 0.37 | 119.05 0.83 | 78.47 0.11
""")

VIDEO_TABLE = _rows("bart", VIDEO, """
Full Fine-tuning | 100 | 76.3 - | 73.9 - | 45.7 - | 154.0 - | 87.4 -
VL-Adapter | 3.39 | 76.6 - | 73.9 - | 46.3 - | 152.9 - | 87.4 -
LoRA | 5.17 | 75.5 - | 72.9 - | 44.6 - | 140.9 - | 83.4 -
""")

TABLES = {"table2": TABLE2, "table9": TABLE9, "video": VIDEO_TABLE}
TITLES = {"table2": "VL-PET Table 2 (three seeds); DoRA: the DoRA paper's VL-BART row (one seed, batch 300)",
          "table9": "VL-PET Table 9 (three seeds)",
          "video": "VL-Adapter video-text table (secondary source, one seed; VL-PET's was not found)"}
