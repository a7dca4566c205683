"""The example sentence of Figure 3: its full attention maps for the shown heads, and how it is chosen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from headlab.data.alignment import Span, align_spans
from headlab.heads import head_name
from headlab.measure.relation_heads import EXAMPLE_COLUMNS, LinkScores, sentence_scores
from headlab.model.engine import Controls, head_count, layer_count, model_family
from headlab.model.inference import inference_session

# ---------------------------------------------------------------------------------------------
# One sentence's full maps, for the figure
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttentionMaps:
    """Full attention maps of some heads for one sentence (word pieces incl. [CLS]/[SEP])."""

    tokens: list[str]
    heads: list[tuple[int, int]]  # 1-based (layer, head), one per map
    maps: np.ndarray  # (maps, query, key)
    target: Span | None  # word-piece range of the target
    fes: list[Span | None]  # word-piece range of each requested FE span


def attention_maps(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    heads: Sequence[tuple[int, int]],
    device: torch.device | str,
    target: Span | None = None,
    fes: Sequence[Span] = (),
) -> AttentionMaps:
    """The full (query, key) attention of each 1-based (layer, head) in `heads` for one text.

    `target` and `fes` are character spans, returned aligned to word pieces.
    """
    n_layers, n_heads = layer_count(model), head_count(model)
    for layer, head in heads:
        if not (1 <= layer <= n_layers and 1 <= head <= n_heads):
            raise ValueError(
                f"head {head_name(layer, head)} does not exist (model has {n_layers} x {n_heads})"
            )
    spans = [target or (0, 0), *fes]
    (aligned,) = align_spans(tokenizer, [text], [spans])
    wanted: dict[int, list[int]] = {}
    for layer, head in heads:
        wanted.setdefault(layer - 1, []).append(head - 1)
    captured: dict[tuple[int, int], np.ndarray] = {}

    def capture(layer: int, probs: torch.Tensor, key_is_real: torch.Tensor) -> None:
        for head in wanted.get(layer, []):
            captured[(layer + 1, head + 1)] = probs[0, head].float().cpu().numpy()  # (query, key)

    where = torch.device(device)
    n = len(aligned.input_ids)
    inputs = {
        "input_ids": torch.tensor([aligned.input_ids], device=where),  # (1, tokens)
        "token_type_ids": torch.tensor([aligned.token_type_ids], device=where),  # (1, tokens)
        "attention_mask": torch.ones(1, n, dtype=torch.long, device=where),  # (1, tokens)
    }
    if not model_family(model).takes_token_type_ids(model.config):
        del inputs["token_type_ids"]
    with inference_session(model, where):
        model(**inputs, headlab=Controls(observers=[capture]))
    return AttentionMaps(
        tokens=aligned.tokens,
        heads=list(heads),
        maps=np.stack([captured[h] for h in heads]),  # (maps, query, key)
        target=aligned.pieces[0] if target is not None else None,
        fes=list(aligned.pieces[1:]),
    )


def example_table(
    model_alias: str, sentence: Mapping[str, Any], fe_names: Sequence[str], maps: AttentionMaps
) -> pl.DataFrame:
    """The maps as a tidy table (one row per head, query, key), roles marking target and FE pieces."""
    n = len(maps.tokens)
    roles = ["other"] * n
    elements: list[str | None] = [None] * n
    for fe, name in zip(maps.fes, fe_names, strict=True):
        if fe is not None:
            roles[fe[0] : fe[1]] = ["fe"] * (fe[1] - fe[0])
            elements[fe[0] : fe[1]] = [name] * (fe[1] - fe[0])
    if maps.target is not None:
        roles[maps.target[0] : maps.target[1]] = ["target"] * (maps.target[1] - maps.target[0])
    query, key = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")  # (query, key) each
    frames = []
    for (layer, head), weights in zip(maps.heads, maps.maps, strict=True):
        frames.append(
            pl.DataFrame(
                {
                    "model": model_alias,
                    "sentence_id": sentence["sentence_id"],
                    "text": sentence["text"],
                    "frame": sentence["frame"],
                    "lu": sentence["lu"],
                    "fe": "; ".join(fe_names),
                    "layer": layer,
                    "head": head,
                    "query": query.ravel(),
                    "key": key.ravel(),
                    "query_token": [maps.tokens[q] for q in query.ravel()],
                    "key_token": [maps.tokens[k] for k in key.ravel()],
                    "query_role": [roles[q] for q in query.ravel()],
                    "key_role": [roles[k] for k in key.ravel()],
                    "query_fe": [elements[q] for q in query.ravel()],
                    "key_fe": [elements[k] for k in key.ravel()],
                    "weight": weights.ravel().astype(np.float64),
                },
                schema=EXAMPLE_COLUMNS,
            )
        )
    return pl.concat(frames)


def choose_example(scored: LinkScores, heads: Sequence[tuple[int, int]], sentence_id: str | None) -> str:
    """The sentence drawn in the figure: `sentence_id` if given (it must be a kept sentence), else
    the sentence whose score (max over its links), averaged over `heads`, is highest (an
    illustration of the pattern, not a typical case; ties: table order)."""
    kept = scored.links["sentence_id"]
    if sentence_id is not None:
        if sentence_id not in set(kept.to_list()):
            raise ValueError(f"framenet.example {sentence_id!r} is not among the kept, aligned sentences")
        return sentence_id
    order, per_sentence = sentence_scores(scored.links, scored.scores)  # (sentences, layers, heads)
    columns = [per_sentence[:, layer - 1, head - 1] for layer, head in heads]  # each (sentences,)
    picked = np.stack(columns, axis=1)  # (sentences, shown heads)
    return order[int(np.argmax(picked.mean(axis=1)))]
