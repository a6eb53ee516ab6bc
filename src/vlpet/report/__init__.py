"""Run folders → tables over seeds, plots, the paper's rows (``python -m vlpet report`` is ``commands/report.py``).

``runs``: find and read run folders; ``groups``: group finished runs over seeds; ``tables``: md / csv / latex / json;
``plots``: validation curves and the Params-vs-Avg scatter; ``paper``: the paper's published numbers.
"""
