"""finetune.pooling: the classifier reading the mean over real tokens (`headlab.model.pooling`),
against a hand-written mean, through padding, a saved checkpoint and training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

from headlab.model.pooling import CONFIG_KEY, PoolingError, masked_mean, restore_pooling, set_pooling
from tiny import tiny_classifier

TOL = {"rtol": 1e-5, "atol": 1e-6}


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three examples of 5, 9 and 3 real tokens padded to 9: input ids (3, 9), mask (3, 9)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 30, (3, 9), generator=generator)  # (B, L)
    mask = torch.zeros(3, 9, dtype=torch.long)
    for row, real in enumerate((5, 9, 3)):
        mask[row, :real] = 1
    return ids * mask, mask  # pad id 0 past each example's end


def _hand_logits(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The classifier of the last layer's mean over real tokens, by an explicit loop: (B, labels)."""
    hidden = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, H)
    means = [hidden[row, : int(mask[row].sum())].mean(dim=0) for row in range(ids.shape[0])]  # B x (H,)
    return model.classifier(torch.stack(means))


def test_masked_mean_is_the_mean_of_the_real_tokens() -> None:
    hidden = torch.randn(3, 9, 6, generator=torch.Generator().manual_seed(1))  # (B, L, H)
    _, mask = _batch()
    expected = torch.stack([hidden[row, : int(mask[row].sum())].mean(0) for row in range(3)])
    torch.testing.assert_close(masked_mean(hidden, mask), expected, **TOL)
    torch.testing.assert_close(masked_mean(hidden, None), hidden.mean(1), **TOL)
    with pytest.raises(PoolingError, match="attention mask"):
        masked_mean(hidden, mask[:, :4])


def test_mean_pooling_logits_match_a_hand_written_readout() -> None:
    model = set_pooling(tiny_classifier(seed=4), "mean")
    ids, mask = _batch()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits  # (B, labels)
        torch.testing.assert_close(logits, _hand_logits(model, ids, mask), **TOL)
        cls_logits = tiny_classifier(seed=4)(input_ids=ids, attention_mask=mask).logits
    assert (logits - cls_logits).abs().max() > 1e-3  # the readout changed what the classifier sees
    assert getattr(model.config, CONFIG_KEY) == "mean"


def test_padding_does_not_change_a_mean_pooled_prediction() -> None:
    model = set_pooling(tiny_classifier(seed=5), "mean")
    ids, mask = _batch(seed=2)
    with torch.no_grad():
        padded = model(input_ids=ids, attention_mask=mask).logits  # (3, labels)
        alone = model(input_ids=ids[:1, :5], attention_mask=mask[:1, :5]).logits  # (1, labels)
    torch.testing.assert_close(padded[:1], alone, rtol=1e-4, atol=1e-5)


def test_a_saved_checkpoint_is_read_back_with_its_pooling(tmp_path: Path) -> None:
    model = set_pooling(tiny_classifier(seed=6), "mean")
    model.save_pretrained(tmp_path)
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    restored = restore_pooling(AutoModelForSequenceClassification.from_pretrained(tmp_path).eval())
    ids, mask = _batch(seed=3)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
        torch.testing.assert_close(restored(input_ids=ids, attention_mask=mask).logits, expected, **TOL)
        # without restoring, the checkpoint would silently read [CLS]
        assert (plain(input_ids=ids, attention_mask=mask).logits - expected).abs().max() > 1e-3


def test_the_loaders_apply_and_restore_the_pooling(tmp_path: Path) -> None:
    """load_for_task gives a fresh head reading the pooling; a checkpoint saved by the fine-tuning
    job is read back by load_checkpoint with it (every later rule loads that way)."""
    from headlab.data.tasks import get_task
    from headlab.model.finetune import save_checkpoint
    from headlab.model.loading import load_checkpoint, load_for_task
    from headlab.model.specs import ModelSpec
    from tiny import write_tiny_model

    spec = ModelSpec("tiny", "local", str(write_tiny_model(tmp_path / "encoder", seed=8)))
    model, tokenizer = load_for_task(spec, get_task("MRPC"), "pretrained", seed=1, pooling="mean")
    model.eval()
    ids, mask = _batch(seed=5)
    with torch.no_grad():
        torch.testing.assert_close(
            model(input_ids=ids, attention_mask=mask).logits, _hand_logits(model, ids, mask), **TOL
        )
        save_checkpoint(model, tokenizer, tmp_path / "checkpoint")
        loaded, _ = load_checkpoint(tmp_path / "checkpoint")
        loaded.eval()
        torch.testing.assert_close(
            loaded(input_ids=ids, attention_mask=mask).logits,
            model(input_ids=ids, attention_mask=mask).logits,
            **TOL,
        )
    cls_model, _ = load_for_task(spec, get_task("MRPC"), "pretrained", seed=1)
    assert getattr(cls_model.config, CONFIG_KEY) == "cls"


def test_a_pruned_checkpoint_keeps_its_pooling(tmp_path: Path) -> None:
    from headlab.model.pruning import load_pruned, save_pruned

    model = set_pooling(tiny_classifier(seed=9), "mean")
    save_pruned(model, None, tmp_path, [(0, 1), (1, 3)])
    ids, mask = _batch(seed=6)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
        loaded = load_pruned(tmp_path)(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(loaded, expected, **TOL)


def test_training_with_mean_pooling_leaves_the_unused_pooler_without_gradient() -> None:
    model = set_pooling(tiny_classifier(seed=7), "mean").train()
    ids, mask = _batch(seed=4)
    loss = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1])).loss
    loss.backward()
    assert model.bert.pooler.dense.weight.grad is None
    assert model.classifier.weight.grad is not None and model.classifier.weight.grad.abs().sum() > 0


def test_pooling_is_refused_by_name_where_it_cannot_apply() -> None:
    roberta = RobertaForSequenceClassification(
        RobertaConfig(
            vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37
        )
    )
    with pytest.raises(PoolingError, match=r"finetune.pooling: 'mean' .* 'roberta' model"):
        set_pooling(roberta, "mean")
    assert getattr(set_pooling(roberta, "cls").config, CONFIG_KEY) == "cls"
    with pytest.raises(PoolingError, match="'max' is not one of cls, mean"):
        set_pooling(tiny_classifier(), "max")
    hooked = set_pooling(tiny_classifier(), "mean")
    assert set_pooling(hooked, "mean") is hooked
    with pytest.raises(PoolingError, match="already reads 'mean'"):
        set_pooling(hooked, "cls")
