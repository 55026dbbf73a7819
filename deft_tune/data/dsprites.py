"""dSprites (Matthey et al. 2017): procedural renderer output or the user's real file."""

from __future__ import annotations

from deft_tune.data.render import FACTOR_NAMES, FACTOR_SIZES, factor_values, render_masks

__all__ = ["FACTOR_NAMES", "FACTOR_SIZES", "factor_values", "render_masks"]
