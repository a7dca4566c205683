"""Tiny synthetic fixtures: a random BERT (2 layers x 4 heads, hidden 32) with a word-level
tokenizer, and a small GLUE folder in the classic TSV layout. Nothing is downloaded."""

from __future__ import annotations

import random
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "bird",
    "sat",
    "ran",
    "on",
    "under",
    "mat",
    "rug",
    "good",
    "great",
    "fine",
    "bad",
    "awful",
    "poor",
    "movie",
    "film",
    "plot",
    "was",
    "is",
    "not",
    "very",
    "really",
    "quite",
    "and",
    "but",
    ".",
    ",",
    "!",
    "?",
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
POSITIVE = ("good", "great", "fine")
NEGATIVE = ("bad", "awful", "poor")


def tiny_tokenizer() -> BertTokenizer:
    return BertTokenizer(vocab={w: i for i, w in enumerate(SPECIALS + WORDS)})


def tiny_config(
    layers: int = 2, heads: int = 4, num_labels: int = 2, initializer_range: float = 0.3
) -> BertConfig:
    """BertModelTester's sizes; a wide initializer makes attention peaked, so disabling matters."""
    return BertConfig(
        vocab_size=len(SPECIALS) + len(WORDS),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=37,
        max_position_embeddings=64,
        num_labels=num_labels,
        initializer_range=initializer_range,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )


def tiny_classifier(seed: int = 0, **config: object) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_config(**config)).eval()


def write_tiny_model(folder: Path, seed: int = 0, **config: object) -> Path:
    """A pretrained-style folder: BertModel weights, config.json and tokenizer files."""
    torch.manual_seed(seed)
    BertModel(tiny_config(**config)).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def _sentence(rng: random.Random, sentiment: str) -> str:
    words = POSITIVE if sentiment == "1" else NEGATIVE
    subject, adverb = rng.choice(["movie", "film", "plot"]), rng.choice(["very", "really", "quite"])
    return f"the {subject} was {adverb} {rng.choice(words)} ."


STSB_COLUMNS = (
    "index",
    "genre",
    "filename",
    "year",
    "old_index",
    "source1",
    "source2",
    "sentence1",
    "sentence2",
    "score",
)


def write_tiny_glue(folder: Path, tasks: tuple[str, ...] = ("MRPC", "SST-2", "RTE"), rows: int = 40) -> Path:
    """Synthetic train/dev TSVs whose labels follow the words, in the real files' layouts."""
    rng = random.Random(7)
    for task in tasks:
        (folder / task).mkdir(parents=True, exist_ok=True)
        for split in ("train", "dev"):
            lines = []
            for i in range(rows):
                label = rng.choice("01")
                a, b = (
                    _sentence(rng, label),
                    _sentence(rng, label if rng.random() < 0.8 else "01"[label == "0"]),
                )
                if task == "MRPC":
                    lines.append(f"{label}\t{i}\t{i + 1000}\t{a}\t{b}")
                elif task == "SST-2":
                    lines.append(f"{a} \t{label}")
                elif task == "RTE":
                    lines.append(f"{i}\t{a}\t{b}\t{'entailment' if label == '1' else 'not_entailment'}")
                elif task == "STS-B":
                    score = 4.0 * int(label) + rng.random()  # similar sentences score high
                    lines.append(
                        f"{i}\tmain-captions\tMSRvid\t2012test\t{i:04d}\tnone\tnone\t{a}\t{b}\t{score:.3f}"
                    )
            header = {
                "MRPC": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String",
                "SST-2": "sentence\tlabel",
                "RTE": "index\tsentence1\tsentence2\tlabel",
                "STS-B": "\t".join(STSB_COLUMNS),
            }[task]
            (folder / task / f"{split}.tsv").write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return folder


def eager_context(
    self_attention: torch.nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """(batch, tokens, hidden) a BERT self-attention's context vectors, computed by hand."""
    batch, tokens, _ = hidden.shape
    size = self_attention.attention_head_size

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(batch, tokens, -1, size).transpose(1, 2)  # (batch, heads, tokens, head_dim)

    q, k, v = (
        split(self_attention.query(hidden)),
        split(self_attention.key(hidden)),
        split(self_attention.value(hidden)),
    )
    scores = q @ k.transpose(2, 3) / size**0.5  # (batch, heads, query, key)
    scores = scores.masked_fill(attention_mask[:, None, None, :] == 0, torch.finfo(scores.dtype).min)
    context = scores.softmax(-1) @ v  # (batch, heads, query, head_dim)
    return context.transpose(1, 2).reshape(batch, tokens, -1)
