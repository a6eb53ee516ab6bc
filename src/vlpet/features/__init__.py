"""Feature extractors that write the ``clip_features`` and ``vis_features`` trees: the CLIP RN101 grid of images
(``image``, ``resnet``, ``weights``), CLIP ViT-B/32 frame embeddings of videos (``video``), and converters of the
public TV annotations into the VALUE layout (``value_convert``). Command line: ``python -m vlpet extract --help``."""
