"""ClaimInputs for the claim tests: the config schema's claims.* and statistics.* defaults, with
fewer bootstrap resamples or permutations where a test asks."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from headlab.analysis.claim_inputs import ClaimInputs
from headlab.analysis.significance import StatisticsSettings
from headlab.workflow.defaults import config_defaults


def claim_inputs(*, resamples: int = 300, permutations: int | None = None, **fields: Any) -> ClaimInputs:
    """ClaimInputs of model "m" with the schema's defaults, `fields` over them."""
    claims = config_defaults("claims")
    settings = StatisticsSettings.of(config_defaults("statistics"))
    settings = replace(settings, resamples=resamples, permutations=permutations or settings.permutations)
    defaults = {
        "model": "m",
        "tasks": [],
        "pair_heads": claims["pair_heads"],
        "pair_heads_named": False,
        "modes": config_defaults("ablation")["modes"],
        "agreement_threshold": claims["agreement_threshold"],
        "no_harm_margin": claims["no_harm_margin"],
        "settings": settings,
    }
    return ClaimInputs(**{**defaults, **fields})
