"""The vocabulary of weights (headlab.conditions): one word per condition, read the same way by the
loader, the rules and Table 1."""

from __future__ import annotations

import pytest
import torch

from headlab.conditions import (
    ATTENTION_CONDITIONS,
    CONDITIONS,
    PAPER_NAMES,
    TRAINED,
    check_condition,
    is_trained,
    starts_from_encoder,
)
from headlab.data.tasks import get_task
from headlab.model.loading import load_for_task
from headlab.model.specs import ModelSpec
from tiny import write_tiny_model


def test_each_condition_has_one_meaning() -> None:
    assert CONDITIONS == ("pretrained", "scratch", "finetuned")  # Table 1's column order
    assert set(PAPER_NAMES) == set(CONDITIONS)
    assert [is_trained(c) for c in CONDITIONS] == [False, True, True]
    assert [starts_from_encoder(c) for c in CONDITIONS] == [True, False, True]
    assert set(TRAINED) | set(ATTENTION_CONDITIONS) == set(CONDITIONS)
    for old in ("finetuned-pretrained", "finetuned-random", "random", "distilled"):
        with pytest.raises(ValueError, match="not one of pretrained, scratch, finetuned"):
            check_condition(old)


def test_loader_starts_each_condition_from_its_weights(tmp_path) -> None:
    """pretrained and finetuned start from the encoder's weights; scratch re-initialises them."""
    folder = write_tiny_model(tmp_path / "model", seed=3)
    spec = ModelSpec.from_config("tiny", {"source": "local", "path": str(folder)})
    task = get_task("SST-2")
    encoder = {
        c: load_for_task(spec, task, c, seed=0)[0].base_model.embeddings.word_embeddings.weight
        for c in CONDITIONS
    }
    assert torch.equal(encoder["pretrained"], encoder["finetuned"])
    assert not torch.allclose(encoder["scratch"], encoder["pretrained"], rtol=1e-3, atol=1e-3)
