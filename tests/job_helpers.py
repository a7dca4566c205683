"""What the tests of tests/jobs share: a tiny "pretrained" model folder whose weights are not its
initialiser's, the settings of the jobs, and the finetune job run as its rule runs it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import BertModel

from headlab.jobs.finetune import Finetune, finetune
from tiny import tiny_config, tiny_tokenizer

# The model's own initialiser draws weight matrices from N(0, INIT_RANGE) (biases 0, LayerNorm 1
# and 0); the "pretrained" matrices are drawn from N(0, PRETRAINED_STD) (tests/tiny.py's wide
# range: peaked attention, so disabling a head matters) and its biases and LayerNorm parameters
# are moved by N(0, PRETRAINED_SHIFT), so a re-initialised model differs in every value and in
# the spread of its matrices.
INIT_RANGE = 0.05
PRETRAINED_STD, PRETRAINED_SHIFT = 0.3, 0.1
TASK = "MRPC"
SETTINGS = {
    "epochs": 1,
    "batch_size": 8,
    "learning_rate": 1e-3,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "group_by_length": True,
    "length_chunk": 50,
}
MAX_LENGTH = 32


@dataclass(frozen=True)
class Trained:
    checkpoint: Path
    training_log: Path


def job_logger() -> logging.Logger:
    return logging.getLogger("headlab.tests.jobs")


def write_pretrained(folder: Path, seed: int = 11) -> Path:
    """A BERT folder whose config says initializer_range INIT_RANGE and whose weights are not
    what that initialiser would draw."""
    torch.manual_seed(seed)
    model = BertModel(tiny_config(initializer_range=PRETRAINED_STD))
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.add_(torch.randn_like(parameter) * PRETRAINED_SHIFT)
        padding = model.embeddings.word_embeddings.weight[model.config.pad_token_id]
        padding.normal_(0, PRETRAINED_STD)  # the initialiser leaves it 0: here it is not
    model.config.initializer_range = INIT_RANGE
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["initializer_range"] == INIT_RANGE
    return folder


def model_entry(folder: Path) -> dict[str, Any]:
    return {"alias": "tiny", "source": "local", "path": str(folder)}


def tensors(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(checkpoint / "model.safetensors")


def run_finetune(folder: Path, pretrained: Path, train: Path, condition: str, seed: int) -> Trained:
    """The finetune job as the rule runs it, into `folder`."""
    trained = Trained(folder / f"checkpoint-{condition}", folder / f"training-{condition}.parquet")
    params = Finetune(
        model="tiny",
        task=TASK,
        condition=condition,
        model_entry=model_entry(pretrained),
        train=train,
        seed=seed,
        settings=SETTINGS,
        max_length=MAX_LENGTH,
        device="cpu",
        precision="float32",
        checkpoint=trained.checkpoint,
        training_log=trained.training_log,
    )
    finetune(params, job_logger())
    return trained
