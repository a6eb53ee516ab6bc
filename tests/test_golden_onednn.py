"""The golden checks of ``test_golden.py`` again, on the ``--onednn`` path (``models/onednn.py``): every fixture of
the official code, the same tolerances, the same generated ids."""

from __future__ import annotations

import pytest

from test_golden import NAMES, build_case
from test_golden import test_encoder_logits_losses, test_generation, test_gradients  # noqa: F401  (run here too)
from vlpet.models.onednn import unavailable, use_onednn

pytestmark = [pytest.mark.golden, pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))]


@pytest.fixture(scope="module", params=NAMES)
def case(request):
    fx, model = build_case(request.param)
    use_onednn(model)
    return fx, model
