"""Pattern classes (Sec. 4.1, Figures 1 and 2): attention_stats' reduction on maps of each class
against a loop reference, the rules on hand-built maps of each class and on edge values,
downsampling against torch, seeded export on a tiny BERT against its full attention maps (the
maps and their statistics), the PNG encoder, the annotation tool over HTTP on
loopback, the CNN (8 conv layers, learns synthetic classes, deterministic, saved and reloaded,
the on-the-fly observer against full maps), the jobs and the figures."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from headlab.analysis.pattern_summary import class_shares, classifier_names, typical_maps
from headlab.analysis.patterns import (
    CLASSES_SCHEMA,
    MAPS_SCHEMA,
    PATTERNS,
    STATS_SCHEMA,
    Thresholds,
    classify_statistics,
    pattern_shares,
)
from headlab.annotate import AnnotationSession, load_maps, make_server
from headlab.data.labels import final_labels, read_labels, write_labels
from headlab.io.png import DARK, PNG_SIGNATURE, png_bytes, write_png
from headlab.io.torch_state import write_torch_state
from headlab.measure.attention_stats import STATS, Reduction, reduce_attention
from headlab.measure.maps import downsample_map, export_maps, map_array, map_id, sample_maps
from headlab.measure.pattern_classes import classify_exported_maps, cnn_head_probabilities
from headlab.measure.pattern_cnn import (
    METRICS_SCHEMA,
    PREDICTIONS_SCHEMA,
    CnnSettings,
    PatternCNN,
    class_probabilities,
    classify_maps,
    cnn_record,
    cnn_reports,
    load_cnn,
    metrics_table,
    split_indices,
    train_cnn,
)
from headlab.measure.tokens import TokenCategories, is_punctuation
from headlab.plots.patterns import plot_figure1, plot_figure2
from headlab.workflow.defaults import config_defaults
from tiny import tiny_classifier, tiny_tokenizer

# The config schema's defaults: the one place they live.
RULES = Thresholds.from_config(config_defaults("patterns.thresholds"))
DEFAULT_CNN = CnnSettings.from_config(config_defaults("patterns.cnn"))

PDF_SIGNATURE = b"%PDF-"
KEYS = {"model": "m", "task": "MRPC", "condition": "finetuned"}
HTTP_TIMEOUT = 5.0

# ---------------------------------------------------------------------------------------------
# Hand-built maps
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roles:
    """What each real token of one hand-built example is; all arrays have shape (tokens,)."""

    is_cls: np.ndarray  # bool
    sep_order: np.ndarray  # int: 0 not a [SEP], 1 the first [SEP], 2 the second, ...
    is_punct: np.ndarray  # bool: punctuation only, never a special token
    segment: np.ndarray  # int: token_type_id
    token: np.ndarray  # int: the token's id (equal ids: the same word piece)

    def shared(self) -> np.ndarray:
        """(tokens,) bool: content tokens (not punctuation) of a pair whose id a content token of
        the other segment has too, one pair of tokens at a time."""
        n = self.is_cls.shape[0]
        content = [k for k in range(n) if not (self.is_cls[k] or self.sep_order[k] or self.is_punct[k])]
        out = np.zeros(n, dtype=bool)
        if (self.sep_order > 0).sum() >= 2:
            for k in content:
                out[k] = any(
                    self.token[j] == self.token[k] and self.segment[j] != self.segment[k] for j in content
                )
        return out

    def categories(self) -> TokenCategories:
        """The categories of attention_stats (a batch of one example)."""
        return TokenCategories.from_masks(
            is_real=torch.ones(1, self.is_cls.shape[0], dtype=torch.bool),
            is_cls=torch.from_numpy(self.is_cls)[None],
            is_sep=torch.from_numpy(self.sep_order > 0)[None],
            is_punct=torch.from_numpy(self.is_punct)[None],
            segment=torch.from_numpy(self.segment)[None],
            is_shared=torch.from_numpy(self.shared())[None],
        )


def roles_of_tokens(tokens: list[str], token_type_ids: list[int]) -> Roles:
    """The roles of real word pieces (as `tokenizer.convert_ids_to_tokens` gives them)."""
    is_cls = np.array([t == "[CLS]" for t in tokens], dtype=bool)
    is_sep = np.array([t == "[SEP]" for t in tokens], dtype=bool)
    sep_order = np.where(is_sep, np.cumsum(is_sep), 0).astype(np.int64)
    is_punct = np.array([is_punctuation(t) for t in tokens], dtype=bool) & ~is_cls & ~is_sep
    token = np.unique(np.array(tokens), return_inverse=True)[1].astype(np.int64)  # equal strings, equal ids
    return Roles(is_cls, sep_order, is_punct, np.asarray(token_type_ids, dtype=np.int64), token)


def roles_for(n: int, paired: bool) -> Roles:
    """[CLS] w w ... [SEP] (w ... [SEP]) with a "." before each [SEP]; segment 1 after the first [SEP];
    the words cycle through 5 ids, so the two sentences of a pair share some."""
    is_cls = np.zeros(n, dtype=bool)
    is_cls[0] = True
    sep = np.zeros(n, dtype=np.int64)
    segment = np.zeros(n, dtype=np.int64)
    punct = np.zeros(n, dtype=bool)
    ends = [n // 2, n - 1] if paired else [n - 1]
    for order, position in enumerate(ends, start=1):
        sep[position] = order
        punct[position - 1] = True
    if paired:
        segment[n // 2 + 1 :] = 1
    token = 10 + np.arange(n) % 5
    return Roles(is_cls, sep, punct, segment, token)


def synthetic_map(kind: str, n: int, rng: np.random.Generator, paired: bool = True, noise: float = 0.05):
    """A row-stochastic (n, n) map of one class plus `noise` spread at random, and its token roles."""
    roles = roles_for(n, paired)
    specials = np.flatnonzero(roles.is_cls | (roles.sep_order > 0))
    weights = np.zeros((n, n))
    for q in range(n):
        row = np.zeros(n)
        if kind in ("vertical", "vertical+diagonal"):
            share = 0.9 if kind == "vertical" else 0.45
            row[specials] += share * rng.dirichlet(np.ones(specials.size))
        if kind in ("diagonal", "vertical+diagonal"):
            share = 0.9 if kind == "diagonal" else 0.45
            offsets = [o for o in (-1, 0, 1) if 0 <= q + o < n]
            for offset, part in zip(offsets, rng.dirichlet(np.full(len(offsets), 0.5)), strict=True):
                row[q + offset] += share * part
        if kind == "block":
            content = (roles.sep_order == 0) & ~roles.is_cls
            same = np.flatnonzero(content & (roles.segment == roles.segment[q]))
            row[same] += 0.95 * rng.dirichlet(np.full(same.size, 2.0))
        if kind == "heterogeneous":
            row += 0.95 * rng.dirichlet(np.full(n, 0.1))
        row += noise * rng.dirichlet(np.ones(n))
        weights[q] = row / row.sum()
    return weights, roles


def reference_statistics(weights: np.ndarray, roles: Roles) -> dict[str, float]:
    """attention_stats' definitions, one query at a time, in float64 (the reference)."""
    n = weights.shape[0]
    n_sep = int((roles.sep_order > 0).sum())
    content = (roles.sep_order == 0) & ~roles.is_cls
    shared = roles.shared()
    sums = dict.fromkeys(STATS, 0.0)
    for q in range(n):
        row = weights[q]
        sums["cls"] += row[roles.is_cls].sum()
        sums["sep"] += row[roles.sep_order > 0].sum()
        sums["sep_first"] += row[roles.sep_order == 1].sum()
        sums["sep_second"] += row[roles.sep_order == n_sep].sum() if n_sep >= 2 else np.nan
        sums["punct"] += row[roles.is_punct].sum()
        sums["self"] += row[q]
        sums["prev"] += row[q - 1] if q > 0 else 0.0
        sums["next"] += row[q + 1] if q + 1 < n else 0.0
        sums["within_segment"] += row[content & (roles.segment == roles.segment[q])].sum()
        sums["across_segment"] += (
            row[content & (roles.segment != roles.segment[q])].sum() if n_sep >= 2 else np.nan
        )
        sums["overlap"] += row[shared & (roles.segment != roles.segment[q])].sum() if n_sep >= 2 else np.nan
        sums["entropy"] -= sum(p * np.log(p) for p in row if p > 0)
    means = {name: value / n for name, value in sums.items()}
    means["prev"], means["next"] = sums["prev"] / (n - 1), sums["next"] / (n - 1)  # queries with a neighbour
    return means


def stats_table(rows: list[dict[str, float]], keys: dict[str, str] = KEYS) -> pl.DataFrame:
    """Long statistics rows of attention_stats' schema, one map per example, layer 1, head 1."""
    long = [
        {**keys, "example": e, "layer": 1, "head": 1, "stat": name, "value": float(value)}
        for e, stats in enumerate(rows)
        for name, value in stats.items()
    ]
    return pl.DataFrame(long, schema=STATS_SCHEMA)


# ---------------------------------------------------------------------------------------------
# Statistics and rules
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("paired", [True, False])
def test_attention_stats_of_maps_of_each_class_match_a_loop_reference(paired: bool) -> None:
    """The statistics the rules read, by attention_stats' reduction (float32) on maps of each class."""
    rng = np.random.default_rng(3)
    maps = np.stack([synthetic_map(kind, 17, rng, paired)[0] for kind in PATTERNS])  # (maps, n, n)
    roles = roles_for(17, paired)
    got = reduce_attention(torch.from_numpy(maps)[None], Reduction.of(roles.categories()))[0]  # (maps, stats)
    for i, weights in enumerate(maps):
        expected = reference_statistics(weights, roles)
        for s, name in enumerate(STATS):
            np.testing.assert_allclose(
                got[i, s].double().item(), expected[name], rtol=1e-5, atol=1e-6, err_msg=name
            )
    pair_only = [STATS.index(name) for name in ("sep_second", "across_segment", "overlap")]
    assert roles.shared().any() == paired  # overlap has shared words to weigh
    assert bool(torch.isnan(got[:, pair_only]).all()) != paired


@pytest.mark.parametrize("kind", PATTERNS)
@pytest.mark.parametrize("n", [24, 61])
def test_rules_label_hand_built_maps_of_each_class(kind: str, n: int) -> None:
    rng = np.random.default_rng(n)
    rows = [reference_statistics(*synthetic_map(kind, n, rng)) for _ in range(4)]
    labels = classify_statistics(stats_table(rows), RULES, paired=True)
    assert labels["pattern"].to_list() == [kind] * 4
    assert labels["classifier"].unique().to_list() == ["rules"]
    assert labels["confidence"].is_between(0.0, 1.0).all()


def test_block_needs_a_sentence_pair() -> None:
    rng = np.random.default_rng(5)
    weights, roles = synthetic_map("block", 30, rng, paired=False)  # one "block": the whole sentence
    labels = classify_statistics(stats_table([reference_statistics(weights, roles)]), RULES, paired=False)
    assert labels["pattern"].to_list() == ["heterogeneous"]


def stat_row(cls=0.0, sep=0.0, punct=0.0, prev=0.0, self=0.0, nxt=0.0, within=0.5) -> dict[str, float]:
    return {
        "cls": cls,
        "sep": sep,
        "punct": punct,
        "prev": prev,
        "self": self,
        "next": nxt,
        "within_segment": within,
        "across_segment": 1 - within,
    }


@pytest.mark.parametrize(
    ("row", "thresholds", "expected"),
    [
        (stat_row(cls=0.3, sep=0.3), RULES, "vertical"),  # v = 0.6 exactly
        (stat_row(cls=0.3, sep=0.29), RULES, "heterogeneous"),
        (stat_row(sep=0.3, punct=0.3), RULES, "vertical"),
        (stat_row(sep=0.3, punct=0.3), replace(RULES, punct_is_vertical=False), "heterogeneous"),
        (stat_row(prev=0.3, nxt=0.3), RULES, "diagonal"),
        (stat_row(sep=0.5, prev=0.3), RULES, "vertical+diagonal"),  # mixed wins over vertical
        (stat_row(sep=0.4, prev=0.3), RULES, "heterogeneous"),  # v + d = 0.7 < 0.75
        (stat_row(sep=0.8, prev=0.29), RULES, "vertical"),  # d below mixed_min
        (stat_row(within=0.8), RULES, "block"),
        (stat_row(within=0.79), RULES, "heterogeneous"),
        (stat_row(prev=0.7, within=0.95), RULES, "diagonal"),  # diagonal before block
    ],
)
def test_rules_follow_the_documented_order_and_thresholds(row, thresholds, expected) -> None:
    labels = classify_statistics(stats_table([row]), thresholds, paired=True)
    assert labels["pattern"].to_list() == [expected]


def test_rules_confidence_is_documented_mass() -> None:
    rows = [stat_row(cls=0.2, sep=0.6), stat_row(prev=0.1, self=0.2, within=0.6)]
    labels = classify_statistics(stats_table(rows), RULES, paired=True)
    assert labels["pattern"].to_list() == ["vertical", "heterogeneous"]
    np.testing.assert_allclose(labels["confidence"].to_numpy(), [0.8, 1 - 0.6], atol=1e-12)


def test_rules_output_schema_and_order() -> None:
    rows = [stat_row(sep=0.9)] * 3
    table = stats_table(rows).sample(fraction=1.0, shuffle=True, seed=1)
    labels = classify_statistics(table, RULES, paired=True)
    assert dict(labels.schema) == CLASSES_SCHEMA
    assert labels["example"].to_list() == [0, 1, 2]


def test_rules_reject_bad_tables_and_keys() -> None:
    table = stats_table([stat_row()])
    with pytest.raises(ValueError, match="no \\['punct'\\]"):
        classify_statistics(table.filter(pl.col("stat") != "punct"), RULES, paired=True)
    with pytest.raises(ValueError, match="several values"):
        classify_statistics(pl.concat([table, table.head(1)]), RULES, paired=True)
    with pytest.raises(ValueError, match="unknown key"):
        Thresholds.from_config({"vertcal": 0.5})
    with pytest.raises(ValueError, match="out of range"):
        replace(RULES, vertical=1.5)


def test_token_categories_from_word_pieces() -> None:
    tokens = ["[CLS]", "the", "cat", ".", "[SEP]", "a", ",", "##!", "[SEP]"]
    c = roles_of_tokens(tokens, [0, 0, 0, 0, 0, 1, 1, 1, 1]).categories()
    assert c.is_cls[0].tolist() == [True] + [False] * 8
    assert c.sep_first[0].nonzero().flatten().tolist() == [4]
    assert c.sep_second[0].nonzero().flatten().tolist() == [8]
    assert c.is_punct[0].nonzero().flatten().tolist() == [3, 6, 7]  # "#" is punctuation too (category Po)
    assert c.is_pair.tolist() == [True]
    assert roles_of_tokens(tokens[:5], [0] * 5).categories().is_pair.tolist() == [False]


def test_pattern_shares_fill_missing_classes() -> None:
    classes = pl.DataFrame(
        {"task": ["B", "B", "A", "B"], "pattern": ["block", "vertical", "vertical", "block"]}
    )
    shares = pattern_shares(classes)
    assert shares["task"].unique(maintain_order=True).to_list() == ["B", "A"]
    b = dict(shares.filter(pl.col("task") == "B").select("pattern", "share").iter_rows())
    assert b == pytest.approx(
        {"vertical": 1 / 3, "diagonal": 0, "vertical+diagonal": 0, "block": 2 / 3, "heterogeneous": 0}
    )


# ---------------------------------------------------------------------------------------------
# Downsampling, sampling, PNG
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "size"), [(5, 16), (32, 32), (77, 16), (40, 32)])
def test_downsample_matches_torch_adaptive_average_pooling(n: int, size: int) -> None:
    weights = np.random.default_rng(n).random((n, n))
    expected = F.adaptive_avg_pool2d(torch.from_numpy(weights)[None], size)[0].numpy()  # (size, size)
    np.testing.assert_allclose(downsample_map(weights, size), expected, rtol=1e-6, atol=1e-7)


def test_sample_maps_is_seeded_distinct_and_sorted() -> None:
    first = sample_maps(50, 6, 12, 40, seed=7, task="MRPC")
    assert first == sample_maps(50, 6, 12, 40, seed=7, task="MRPC")
    assert first != sample_maps(50, 6, 12, 40, seed=7, task="RTE")
    assert first != sample_maps(50, 6, 12, 40, seed=8, task="MRPC")
    assert len(set(first)) == 40 and first == sorted(first)
    assert all(0 <= k.example < 50 and 1 <= k.layer <= 6 and 1 <= k.head <= 12 for k in first)
    assert len(sample_maps(2, 2, 2, 100, seed=0, task="x")) == 8  # capped at every map


def test_png_bytes_are_a_valid_scaled_image() -> None:
    values = np.zeros((4, 4))
    values[1, 2] = 0.5
    data = png_bytes(values, scale=3)
    assert data.startswith(PNG_SIGNATURE)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (12, 12)
    idat = data.index(b"IDAT")
    length = int.from_bytes(data[idat - 4 : idat], "big")
    raw = zlib.decompress(data[idat + 4 : idat + 4 + length])
    pixels = np.frombuffer(raw, dtype=np.uint8).reshape(12, 1 + 12 * 3)[:, 1:].reshape(12, 12, 3)
    assert pixels[3 * 1 + 1, 3 * 2 + 1].tolist() == DARK.astype(int).tolist()  # the peak is darkest
    assert pixels[0, 0].tolist() == [247, 251, 255]


# ---------------------------------------------------------------------------------------------
# Export on a tiny BERT
# ---------------------------------------------------------------------------------------------

SENTENCES = [
    ("the cat sat on the mat .", "a dog ran under the rug !"),
    ("the movie was very good .", "the film was not bad ,"),
    ("a bird sat .", "the plot is quite poor ?"),
    ("the dog ran and the cat sat on a mat .", "not good ."),
    ("great film !", "the movie was really awful but the plot is fine ."),
]


def tiny_dev() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "row": list(range(1, len(SENTENCES) + 1)),
            "text_a": [a for a, _ in SENTENCES],
            "text_b": [b for _, b in SENTENCES],
            "label": [0, 1, 0, 1, 1],
        }
    )


def full_attention(model, tokenizer, text_a: str, text_b: str) -> tuple[torch.Tensor, list[str]]:
    """(layers, heads, tokens, tokens) eager attention of one unpadded example, and its tokens."""
    encoded = tokenizer(text_a, text_b, return_tensors="pt", return_token_type_ids=True)
    model.set_attn_implementation("eager")
    with torch.inference_mode():
        out = model(**encoded, output_attentions=True)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    return torch.stack([a[0] for a in out.attentions]), tokens


def test_export_maps_keeps_the_sampled_maps_of_a_tiny_bert(tmp_path: Path) -> None:
    model, tokenizer = tiny_classifier(seed=1, layers=2, heads=4), tiny_tokenizer()
    dev = tiny_dev()
    args = (model, tokenizer, dev, "tiny", "MRPC", 9, 16, 3, 64, 2, "cpu")
    exported = export_maps(*args)
    again = export_maps(*args)
    assert exported.maps.equals(again.maps) and exported.stats.equals(again.stats)  # deterministic
    seeded = export_maps(*args, finetune_seed=43).maps  # the same maps of seed 43's model
    assert seeded.drop("map_id").equals(exported.maps.drop("map_id"))
    assert [i.replace("__s43__", "__") for i in seeded["map_id"]] == exported.maps["map_id"].to_list()
    assert all("__s43__e" in i for i in seeded["map_id"])  # no label of one seed names another's map
    assert dict(exported.maps.schema) == MAPS_SCHEMA and dict(exported.stats.schema) == STATS_SCHEMA
    keys = sample_maps(dev.height, 2, 4, 9, seed=3, task="MRPC")  # positions in the dev table
    got = [(r["example"], r["layer"], r["head"]) for r in exported.maps.iter_rows(named=True)]
    assert got == [(k.example + 1, k.layer, k.head) for k in keys]  # example = the dev `row`
    assert exported.stats.height == 9 * len(STATS)
    arrays = map_array(exported.maps)  # (maps, 16, 16)
    for row, array in zip(exported.maps.iter_rows(named=True), arrays, strict=True):
        attention, tokens = full_attention(model, tokenizer, *SENTENCES[row["example"] - 1])
        full = attention[row["layer"] - 1, row["head"] - 1].numpy()  # (tokens, tokens)
        assert row["n_tokens"] == len(tokens)
        assert row["map_id"] == f"tiny__MRPC__e{row['example']}_L{row['layer']}_H{row['head']}"
        np.testing.assert_allclose(array, downsample_map(full, 16), rtol=1e-5, atol=1e-6)
        stats = exported.stats.filter(
            (pl.col("example") == row["example"])
            & (pl.col("layer") == row["layer"])
            & (pl.col("head") == row["head"])
        )
        types = tokenizer(*SENTENCES[row["example"] - 1])["token_type_ids"]
        expected = reference_statistics(full.astype(np.float64), roles_of_tokens(tokens, types))
        for name in STATS:
            value = stats.filter(pl.col("stat") == name)["value"][0]
            np.testing.assert_allclose(value, expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
    paths = [
        write_png(tmp_path / "png" / f"{name}.png", values, scale=2)
        for name, values in zip(exported.maps["map_id"].to_list(), arrays, strict=True)
    ]
    assert len(set(paths)) == 9 and all(p.read_bytes().startswith(PNG_SIGNATURE) for p in paths)
    assert not list((tmp_path / "png").glob(".*"))  # no temporary files left


# ---------------------------------------------------------------------------------------------
# The CNN
# ---------------------------------------------------------------------------------------------

SMALL_CNN = replace(
    DEFAULT_CNN,
    channels=(4, 4, 8, 8, 8, 8, 8, 8),
    epochs=30,
    batch_size=16,
    learning_rate=3e-3,
    test_fraction=0.25,
    seed=0,
)


def synthetic_set(
    count: int,
    size: int = 16,
    kinds: tuple[str, ...] = ("vertical", "diagonal", "block", "heterogeneous"),
    seed: int = 0,
):
    rng = np.random.default_rng(seed)
    maps, labels = [], []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        weights, _ = synthetic_map(kind, int(rng.integers(12, 60)), rng)
        maps.append(downsample_map(weights, size))
        labels.append(kind)
    return np.stack(maps), labels


@pytest.mark.parametrize("batch_norm", [True, False])
def test_cnn_has_eight_convolutions_with_relu(batch_norm: bool) -> None:
    model = PatternCNN(DEFAULT_CNN.channels, batch_norm)
    modules = list(model.features)
    convs = [i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8
    step = 2 if batch_norm else 1  # conv (-> BatchNorm) -> ReLU
    assert all(isinstance(modules[i + step], nn.ReLU) for i in convs)
    assert all(isinstance(modules[i + 1], nn.BatchNorm2d) for i in convs) == batch_norm
    assert sum(isinstance(m, nn.MaxPool2d) for m in modules) == 4
    assert model.eval()(torch.zeros(3, 1, 32, 32)).shape == (3, len(PATTERNS))


def test_cnn_learns_synthetic_classes_and_is_deterministic(tmp_path: Path) -> None:
    maps, labels = synthetic_set(120)
    trained = train_cnn(maps, labels, SMALL_CNN)
    predicted, confidence = classify_maps(trained.model, maps[trained.test_idx])
    gold = [labels[i] for i in trained.test_idx]
    accuracy = np.mean([p == g for p, g in zip(predicted, gold, strict=True)])
    assert accuracy >= 0.8, f"held-out accuracy {accuracy:.2f}"
    assert len(trained.test_idx) == 32 and ((confidence > 0) & (confidence <= 1)).all()
    short = CnnSettings(**{**vars(SMALL_CNN), "epochs": 2})
    first, second = train_cnn(maps, labels, short), train_cnn(maps, labels, short)
    for (name, a), (_, b) in zip(
        first.model.state_dict().items(), second.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    record = cnn_record(trained.model, 16, SMALL_CNN.channels)
    assert (record["channels"], record["batch_norm"], record["size"]) == (list(SMALL_CNN.channels), True, 16)
    assert record["classes"] == list(PATTERNS)
    path = write_torch_state(record, tmp_path / "cnn" / "model.pt")
    assert not list(path.parent.glob(".*"))
    loaded, size = load_cnn(path)
    assert size == 16
    np.testing.assert_allclose(
        class_probabilities(loaded, maps[:8]), class_probabilities(trained.model, maps[:8])
    )


def test_cnn_reports_score_each_split_and_predict_every_map() -> None:
    maps, labels = synthetic_set(40)
    trained = train_cnn(maps, labels, CnnSettings(**{**vars(SMALL_CNN), "epochs": 3}))
    labelled = pl.DataFrame({"map_id": [f"m{i:02d}" for i in range(40)], "label": labels})
    metrics, predictions = cnn_reports("m", trained, labelled, maps, "cpu")
    assert dict(metrics.schema) == METRICS_SCHEMA and dict(predictions.schema) == PREDICTIONS_SCHEMA
    probs = class_probabilities(trained.model, maps)  # (maps, classes)
    best = probs.argmax(axis=1)
    assert predictions["map_id"].to_list() == labelled["map_id"].to_list()
    assert predictions["label"].to_list() == labels
    assert predictions["predicted"].to_list() == [PATTERNS[i] for i in best]
    np.testing.assert_allclose(predictions["confidence"].to_numpy(), probs.max(axis=1), rtol=0, atol=0)
    test = set(trained.test_idx.tolist())
    assert predictions["split"].to_list() == ["test" if i in test else "train" for i in range(40)]
    gold = np.array([PATTERNS.index(label) for label in labels])
    expected = pl.concat(
        [
            metrics_table("m", name, gold[idx], best[idx])
            for name, idx in (("train", trained.train_idx), ("test", trained.test_idx))
        ]
    )
    assert metrics.equals(expected)
    assert metrics["split"].unique(maintain_order=True).to_list() == ["train", "test"]


def test_split_is_stratified_and_seeded() -> None:
    classes = np.array([0] * 10 + [1] * 5 + [2])
    train, test = split_indices(classes, 0.2, seed=4)
    assert np.array_equal(test, split_indices(classes, 0.2, seed=4)[1])
    assert np.bincount(classes[test], minlength=3).tolist() == [2, 1, 0]  # a single map stays in training
    assert sorted([*train, *test]) == list(range(16))


def test_metrics_table_scores_a_hand_example() -> None:
    gold = np.array([0, 0, 1, 1, 4])
    predicted = np.array([0, 1, 1, 1, 0])
    table = metrics_table("m", "test", gold, predicted)
    assert dict(table.schema) == METRICS_SCHEMA

    def value(metric: str, pattern: str | None = None, other: str | None = None) -> float:
        rows = table.filter(pl.col("metric") == metric)
        rows = (
            rows.filter(pl.col("pattern") == pattern) if pattern else rows.filter(pl.col("pattern").is_null())
        )
        return rows.filter(pl.col("predicted") == other)["value"][0] if other else rows["value"][0]

    assert value("accuracy") == pytest.approx(0.6)
    f1_vertical, f1_diagonal = 0.5, 0.8  # P 1/2 R 1/2; P 2/3 R 1
    assert value("f1", "vertical") == pytest.approx(f1_vertical)
    assert value("f1", "diagonal") == pytest.approx(f1_diagonal)
    assert value("f1_macro") == pytest.approx((f1_vertical + f1_diagonal + 0.0) / 3)
    assert value("count", "heterogeneous", "vertical") == 1
    assert table.filter(pl.col("metric") == "count")["value"].sum() == 5


def test_head_map_observer_matches_full_maps_of_a_tiny_bert() -> None:
    model, tokenizer = tiny_classifier(seed=2, layers=2, heads=4), tiny_tokenizer()
    cnn = PatternCNN((2,) * 8).eval()
    dev = tiny_dev()
    examples = [5, 1, 3]  # dev `row` ids
    probs = cnn_head_probabilities(model, tokenizer, cnn, 16, dev, examples, 64, 2, "cpu")
    assert probs.shape == (3, 2, 4, len(PATTERNS))
    for i, example in enumerate(examples):
        attention, _ = full_attention(model, tokenizer, *SENTENCES[example - 1])  # (layers, heads, n, n)
        small = F.adaptive_avg_pool2d(attention.flatten(0, 1), 16)  # (layers * heads, 16, 16)
        expected = class_probabilities(cnn, small).reshape(2, 4, len(PATTERNS))
        np.testing.assert_allclose(probs[i], expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------------


def test_pattern_classes_job_applies_the_rules(tmp_path: Path) -> None:
    rows = [stat_row(sep=0.9), stat_row(prev=0.9), stat_row(within=0.95)]
    stats_path = tmp_path / "attention" / "finetuned.parquet"
    stats_path.parent.mkdir()
    stats_table(rows).write_parquet(stats_path)
    output = tmp_path / "patterns" / "finetuned.parquet"
    logger = __import__("logging").getLogger("test")
    from headlab.jobs.patterns import PatternClasses, pattern_classes  # the job (deferred: it moves)

    def job(model: str) -> PatternClasses:
        return PatternClasses(
            model=model,
            task="MRPC",
            condition="finetuned",
            model_entry={},
            stats=stats_path,
            thresholds={**config_defaults("patterns.thresholds"), "block": 0.9},
            max_length=64,
            batch_size=8,
            device="cpu",
            precision="float32",
            table=output,
        )

    pattern_classes(job("m"), logger)
    table = pl.read_parquet(output)
    assert table["pattern"].to_list() == ["vertical", "diagonal", "block"]
    assert dict(table.schema) == CLASSES_SCHEMA
    with pytest.raises(ValueError, match="column model holds"):
        pattern_classes(job("other"), logger)


def exported_tables(tmp_path: Path, count: int = 20, size: int = 16) -> tuple[Path, pl.DataFrame]:
    """A maps table of synthetic maps with PNGs beside it, as rule export_maps writes them."""
    arrays, labels = synthetic_set(count, size, kinds=PATTERNS, seed=9)
    rows = [
        {
            "map_id": map_id("m", "MRPC", key),
            "model": "m",
            "task": "MRPC",
            "example": key.example,
            "layer": key.layer,
            "head": key.head,
            "n_tokens": 30,
            "size": size,
            "values": array.ravel().tolist(),
        }
        for key, array in zip(sample_maps(count, 2, 2, count, 0, "MRPC"), arrays, strict=True)
    ]
    maps = pl.DataFrame(rows, schema=MAPS_SCHEMA).with_columns(truth=pl.Series(labels))
    folder = tmp_path / "m" / "MRPC" / "maps"
    folder.mkdir(parents=True)
    maps.drop("truth").write_parquet(folder / "maps.parquet")
    for name, values in zip(maps["map_id"].to_list(), arrays, strict=True):  # values (size, size)
        write_png(folder / "png" / f"{name}.png", values, scale=2)
    return folder / "maps.parquet", maps


def test_classify_exported_maps_by_rules_and_by_cnn() -> None:
    rng = np.random.default_rng(2)
    built = [synthetic_map(kind, 20, rng) for kind in ("vertical", "block")]
    maps = pl.DataFrame(
        [
            {
                "map_id": f"id{e}",
                "model": "m",
                "task": "MRPC",
                "example": e,
                "layer": 1,
                "head": 1,
                "n_tokens": 20,
                "size": 16,
                "values": downsample_map(w, 16).ravel().tolist(),
            }
            for e, (w, _) in enumerate(built)
        ],
        schema=MAPS_SCHEMA,
    )
    stats = stats_table([reference_statistics(weights, roles) for weights, roles in built])
    by_rules = classify_exported_maps(maps, stats, RULES, paired=True)
    assert by_rules["pattern"].to_list() == ["vertical", "block"]
    by_cnn = classify_exported_maps(maps, stats, RULES, True, PatternCNN((2,) * 8))
    assert by_cnn["classifier"].to_list() == ["cnn", "cnn"] and by_cnn["pattern"].is_in(PATTERNS).all()


def http(base: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_annotation_round_trip_over_http_feeds_training(tmp_path: Path) -> None:
    maps_path, maps = exported_tables(tmp_path)
    truth = dict(zip(maps["map_id"].to_list(), maps["truth"].to_list(), strict=True))
    labels_path = tmp_path / "labels.csv"
    session = AnnotationSession(load_maps([maps_path], seed=1), labels_path, "ana")
    server = make_server(session, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = "http://{}:{}".format(*server.server_address[:2])
    try:
        status, page = http(base, "/")
        assert status == 200 and b"keydown" in page
        answered = []
        for _ in range(12):
            state = json.loads(http(base, "/api/next")[1])
            current = state["map"]["map_id"]
            status, png = http(base, state["map"]["png"])
            assert status == 200 and png.startswith(PNG_SIGNATURE)
            status, reply = http(base, "/api/label", {"map_id": current, "label": truth[current]})
            assert status == 200 and json.loads(reply)["done"] == len(answered) + 1
            answered.append(current)
        assert http(base, "/api/label", {"map_id": answered[0], "label": "diagonalish"})[0] == 400
        assert http(base, "/api/label", {"map_id": "nope", "label": "block"})[0] == 400
        assert http(base, "/png/../../etc/passwd.png")[0] == 404
        undone = json.loads(http(base, "/api/undo", {})[1])
        assert undone["done"] == 11 and undone["map"]["map_id"] == answered[-1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=HTTP_TIMEOUT)
    assert not thread.is_alive()
    labels = read_labels(labels_path)
    assert labels["map_id"].to_list() == answered[:-1] and set(labels["annotator"]) == {"ana"}
    assert not list(tmp_path.glob(".labels.csv.*"))  # written atomically, nothing left behind
    resumed = AnnotationSession(load_maps([maps_path], seed=1), labels_path, "ana").state()
    assert resumed["map"]["map_id"] == answered[-1] and resumed["done"] == 11  # resumes where it stopped
    # A later answer for the same map wins; another annotator's file rows are kept.
    relabel = pl.DataFrame(
        [{"map_id": answered[0], "label": "block", "annotator": "bo", "time": "9999-01-01T00:00:00+00:00"}]
    )
    write_labels(pl.concat([labels, relabel]), labels_path)
    final = final_labels(read_labels(labels_path))
    assert final.height == 11 and dict(final.iter_rows())[answered[0]] == "block"
    out = tmp_path / "cnn"
    logger = __import__("logging").getLogger("test")
    settings = {**config_defaults("patterns.cnn"), "channels": [2] * 8, "epochs": 1, "test_fraction": 0.0}
    from headlab.jobs.patterns import TrainPatternCnn, train_pattern_cnn  # the job (deferred: it moves)

    job = TrainPatternCnn(
        model="m",
        maps=[maps_path],
        labels=labels_path,
        settings=settings,
        device="cpu",
        precision="float32",
        cnn=out / "model.pt",
        metrics=out / "metrics.parquet",
        predictions=out / "predictions.parquet",
    )
    train_pattern_cnn(job, logger)
    metrics = pl.read_parquet(out / "metrics.parquet")
    predictions = pl.read_parquet(out / "predictions.parquet")
    assert sorted(predictions["map_id"].to_list()) == sorted(answered[:-1])
    assert dict(predictions.select("map_id", "label").iter_rows()) == dict(final.iter_rows())
    n_train = metrics.filter((pl.col("metric") == "n_maps") & (pl.col("split") == "train"))["value"][0]
    assert n_train == 11 and load_cnn(out / "model.pt")[1] == 16


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def test_figures_render(tmp_path: Path) -> None:
    _, maps = exported_tables(tmp_path)
    classes = maps.select(
        "map_id", pattern="truth", classifier=pl.lit("rules"), confidence=pl.lit(0.5)
    ).with_columns(confidence=pl.when(pl.col("map_id") == maps["map_id"][7]).then(0.9).otherwise(0.5))
    chosen = typical_maps(maps.drop("truth"), classes)
    seventh = maps.row(7, named=True)
    assert chosen[seventh["truth"]]["map_id"] == seventh["map_id"]  # the most confident map of its class
    some = classes.filter(pl.col("pattern") != "block")
    some_chosen = typical_maps(maps.drop("truth"), some)
    assert some_chosen["block"] is None
    pdf, png = plot_figure1(some_chosen, classifier_names(some), tmp_path / "figure1.pdf", "t")
    assert pdf.read_bytes().startswith(PDF_SIGNATURE) and png.read_bytes().startswith(PNG_SIGNATURE)
    rng = np.random.default_rng(0)
    patterns = pl.DataFrame(
        {
            "task": ["MRPC"] * 50 + ["SST-2"] * 30,
            "pattern": rng.choice(PATTERNS, 80, p=[0.3, 0.2, 0.2, 0.1, 0.2]).tolist(),
            "classifier": "rules",
        }
    )
    pdf, png = plot_figure2(class_shares(patterns), tmp_path / "figure2.pdf", "t")
    assert pdf.read_bytes().startswith(PDF_SIGNATURE) and png.read_bytes().startswith(PNG_SIGNATURE)
    assert not list(tmp_path.glob(".*"))
