"""Training: the official optimizer and schedule (``optim``) and a short multi-task train/evaluate loop (``loop``)."""
