"""Synthetic data in the real on-disk layouts, for the demo and the tests (nothing here is read by a loader).

``image``: the image-text world (VQA, GQA, NLVR2, COCO caption trees; optionally rendered images and the original
files that ``prepare`` converts). ``video``: the video-text world (TVQA, How2QA, TVC, YC2C in the VALUE layout).
``python -m vlpet.synth`` writes either tree from the command line.
"""
