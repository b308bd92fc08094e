"""Import the Adversarial Robustness Toolbox quietly (it is in the ``redteam`` extra).

ART's package ``__init__`` imports every framework integration and warns that PyTorch is
missing; the black-box attacks used here never need it, so only that warning is silenced
(any other warning still reaches the caller).
"""

from __future__ import annotations

import warnings

from mlwarden.extras import require_extra


def load_art() -> None:
    """Import ``art`` once (a one-line ConfigError naming the extra when it is not installed)."""
    require_extra("redteam")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTorch not found", category=UserWarning)
        import art  # noqa: F401 - the import is the point: later ``from art…`` imports find it loaded
