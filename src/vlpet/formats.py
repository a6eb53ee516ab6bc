"""On-disk feature formats shared by the writers (``prepare``, ``features``, ``synth``) and the readers (``data``).

Lives below both so that neither reaches into the other: the CLIP RN101 grid is 7 × 7 = 49 regions per image;
a packed feature folder is ``<folder>/packed/features.npy`` (one (n_images, 49, feat_dim) array, written by
``prepare pack``) with ``<folder>/packed/ids.json`` (the image id of each row).
"""

N_GRID = 49
PACKED, ARRAY, INDEX = "packed", "features.npy", "ids.json"
