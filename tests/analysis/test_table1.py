"""Table 1: formatting like the paper, row order, errors, the CSV / Markdown files, and a
scratch column over fewer seeds than the others (finetune.scratch_seeds)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from headlab.analysis.table1 import MISSING, format_mean_sd, table1, table1_markdown
from headlab.io.text import write_csv, write_text

TASK_METRICS = {"MRPC": ("f1", "accuracy"), "STS-B": ("pearson", "spearman"), "RTE": ("accuracy",)}

# The paper's MRPC and RTE rows (STS-B invented: the paper prints one number for it).
PAPER = {
    ("MRPC", "pretrained"): {"f1": 0.0, "accuracy": 0.316},
    ("MRPC", "scratch"): {"f1": 0.812, "accuracy": 0.683},
    ("MRPC", "finetuned"): {"f1": 0.879, "accuracy": 0.823},
    ("STS-B", "pretrained"): {"pearson": 0.331, "spearman": 0.3},
    ("STS-B", "scratch"): {"pearson": -0.029, "spearman": 0.05},
    ("STS-B", "finetuned"): {"pearson": 0.827, "spearman": 0.82},
    ("RTE", "pretrained"): {"accuracy": 0.527},
    ("RTE", "scratch"): {"accuracy": 0.527},
    ("RTE", "finetuned"): {"accuracy": 0.646},
}
N_DEV = {"MRPC": 408, "STS-B": 1500, "RTE": 277}


def scores_table(
    model: str = "bert-base-uncased",
    skip: set[tuple[str, str]] | None = None,
    seed: int = 42,
    shift: float = 0.0,
) -> pl.DataFrame:
    """The paper's scores as one seed's rows (every value + `shift`)."""
    rows = [
        {
            "model": model,
            "task": task,
            "seed": seed,
            "condition": condition,
            "metric": metric,
            "value": value + shift,
        }
        | {"n_examples": N_DEV[task]}
        for (task, condition), values in PAPER.items()
        if (task, condition) not in (skip or set())
        for metric, value in values.items()
    ]
    return pl.DataFrame(rows, schema_overrides={"n_examples": pl.Int64})


def test_format_scores() -> None:
    # one seed: the value alone, as the paper prints it
    assert format_mean_sd([[0.879], [0.823]]) == "87.9/82.3"
    assert format_mean_sd([[0.92]]) == "92.0"
    assert format_mean_sd([[0.0], [0.609]]) == "0.0/60.9"
    assert format_mean_sd([[-0.029]]) == "-2.9"
    assert format_mean_sd([[float("nan")]]) == "nan"
    # several seeds: mean ± sample sd; (0.87, 0.89): mean 0.88, sd sqrt(2 x 0.01^2 / 1) = 0.01414
    assert format_mean_sd([[0.87, 0.89], [0.82, 0.83]]) == "88.0 ± 1.4/82.5 ± 0.7"
    assert format_mean_sd([[0.5, float("nan")]]) == "nan"


def test_table1_mean_and_sd_over_seeds() -> None:
    scores = pl.concat(
        [scores_table(seed=1), scores_table(seed=2, shift=0.02), scores_table(seed=3, shift=0.04)]
    )
    row = table1(scores, TASK_METRICS).filter(pl.col("task") == "RTE").row(0, named=True)
    # 0.646, 0.666, 0.686: mean 66.6, sd 2.0 (points)
    assert row["finetuned"] == "66.6 ± 2.0"
    assert row["n_seeds"] == 3
    with pytest.raises(ValueError, match="seeds"):
        table1(scores.filter(~((pl.col("seed") == 3) & (pl.col("metric") == "f1"))), TASK_METRICS)


def test_table1_rows_like_the_paper() -> None:
    table = table1(scores_table(), TASK_METRICS)
    assert table.columns == [
        "model",
        "task",
        "metric",
        "pretrained",
        "scratch",
        "finetuned",
        "n_dev",
        "n_seeds",
        "n_pretrained",
        "n_scratch",
        "n_finetuned",
    ]
    assert table["task"].to_list() == ["MRPC", "STS-B", "RTE"]  # task_metrics order
    mrpc, stsb, rte = table.iter_rows(named=True)
    assert mrpc == {
        "model": "bert-base-uncased",
        "task": "MRPC",
        "metric": "F1/Acc",
        "pretrained": "0.0/31.6",
        "scratch": "81.2/68.3",
        "finetuned": "87.9/82.3",
        "n_dev": 408,
        "n_seeds": 1,
        "n_pretrained": 1,
        "n_scratch": 1,
        "n_finetuned": 1,
    }
    assert stsb["metric"] == "Pearson/Spearman"
    assert (stsb["pretrained"], stsb["scratch"]) == ("33.1/30.0", "-2.9/5.0")
    assert (rte["metric"], rte["finetuned"], rte["n_dev"]) == ("Acc", "64.6", 277)


def test_metric_order_follows_task_metrics() -> None:
    table = table1(scores_table(), {**TASK_METRICS, "MRPC": ("accuracy", "f1")})
    row = table.filter(pl.col("task") == "MRPC").row(0, named=True)
    assert (row["metric"], row["finetuned"]) == ("Acc/F1", "82.3/87.9")


def test_models_sorted_and_missing_condition() -> None:
    scores = pl.concat([scores_table("roberta"), scores_table("bert", skip={("RTE", "scratch")})])
    table = table1(scores, TASK_METRICS)
    assert table.select("model", "task").rows() == [
        ("bert", "MRPC"),
        ("bert", "STS-B"),
        ("bert", "RTE"),
        ("roberta", "MRPC"),
        ("roberta", "STS-B"),
        ("roberta", "RTE"),
    ]
    assert table.filter(pl.col("model") == "bert", pl.col("task") == "RTE")["scratch"][0] == MISSING


def test_tasks_absent_from_scores_are_skipped() -> None:
    table = table1(scores_table(), {**TASK_METRICS, "QNLI": ("accuracy",)})
    assert "QNLI" not in table["task"].to_list()


def test_errors() -> None:
    scores = scores_table()
    with pytest.raises(ValueError, match=r"'MRPC'.*matthews"):
        table1(scores, {**TASK_METRICS, "MRPC": ("f1", "matthews")})
    with pytest.raises(ValueError, match="RTE"):
        table1(scores, {"MRPC": ("f1", "accuracy"), "STS-B": ("pearson", "spearman")})
    with pytest.raises(ValueError, match="unknown condition"):
        table1(scores.with_columns(pl.lit("zero-shot").alias("condition")), TASK_METRICS)
    with pytest.raises(ValueError, match="duplicate"):
        table1(pl.concat([scores, scores.head(1)]), TASK_METRICS)
    with pytest.raises(ValueError, match="n_examples"):
        bumped = scores.with_columns(
            pl.when(pl.col("condition") == "pretrained")
            .then(10)
            .otherwise(pl.col("n_examples"))
            .alias("n_examples")
        )
        table1(bumped, TASK_METRICS)
    with pytest.raises(ValueError, match="lacks column"):
        table1(scores.drop("n_examples"), TASK_METRICS)


def test_table1_files(tmp_path: Path) -> None:
    table = table1(scores_table(), TASK_METRICS)
    csv_path, md_path = tmp_path / "out" / "table1.csv", tmp_path / "out" / "table1.md"
    write_csv(table, csv_path)
    write_text(table1_markdown(table), md_path)
    assert sorted(p.name for p in csv_path.parent.iterdir()) == ["table1.csv", "table1.md"]

    lines = csv_path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == (
        "model,task,metric,pretrained,scratch,finetuned,n_dev,n_seeds,n_pretrained,n_scratch,n_finetuned"
    )
    assert lines[1] == "bert-base-uncased,MRPC,F1/Acc,0.0/31.6,81.2/68.3,87.9/82.3,408,1,1,1,1"
    back = pl.read_csv(csv_path, schema=dict(table.schema))
    assert back.equals(table)

    md = md_path.read_text(encoding="utf-8").splitlines()
    caption = md[0].lower()
    assert caption.startswith("table 1")
    assert "pre-trained" in caption and "random (normal)" in caption and "no fine-tuning" in caption
    assert md[1] == ""
    assert md[2].startswith("| Model | Dataset | Pre-trained |")
    assert set(md[3].replace("|", "").split()) <= {"---", "---:"}
    assert md[4] == "| bert-base-uncased | MRPC | 0.0/31.6 | 81.2/68.3 | 87.9/82.3 | F1/Acc | 408 | 1 |"
    assert len(md) == 4 + table.height


def unequal_seed_scores() -> pl.DataFrame:
    """Seeds 1, 2, 3 (values + 0, 0.02, 0.04) for pretrained and finetuned; scratch of seed 1
    only, as finetune.scratch_seeds [1] with seeds [1, 2, 3] gives them."""
    return pl.concat(
        [
            scores_table(seed=1),
            scores_table(seed=2, shift=0.02, skip={(t, "scratch") for t in N_DEV}),
            scores_table(seed=3, shift=0.04, skip={(t, "scratch") for t in N_DEV}),
        ]
    )


def test_scratch_over_fewer_seeds_counts_each_column() -> None:
    table = table1(unequal_seed_scores(), TASK_METRICS)
    for row in table.iter_rows(named=True):
        assert (row["n_seeds"], row["n_pretrained"], row["n_scratch"], row["n_finetuned"]) == (3, 3, 1, 3)
    rte = table.filter(pl.col("task") == "RTE").row(0, named=True)
    # finetuned 0.646, 0.666, 0.686: 66.6 ± 2.0; pretrained 0.527, 0.547, 0.567: 54.7 ± 2.0;
    # scratch: seed 1's 0.527 alone (no sd), not pulled towards the other seeds
    assert (rte["finetuned"], rte["pretrained"], rte["scratch"]) == ("66.6 ± 2.0", "54.7 ± 2.0", "52.7")
    mrpc = table.filter(pl.col("task") == "MRPC").row(0, named=True)
    assert mrpc["scratch"] == "81.2/68.3"
    # two scratch seeds of three: mean and sd over those two (0.527, 0.547: 53.7 ± 1.4)
    two = pl.concat(
        [unequal_seed_scores(), scores_table(seed=2, shift=0.02).filter(pl.col("condition") == "scratch")]
    )
    rte2 = table1(two, TASK_METRICS).filter(pl.col("task") == "RTE").row(0, named=True)
    assert (rte2["scratch"], rte2["n_scratch"], rte2["n_seeds"]) == ("53.7 ± 1.4", 2, 3)


def test_markdown_gives_the_n_of_a_column_over_fewer_seeds() -> None:
    scores = unequal_seed_scores().filter(~((pl.col("task") == "STS-B") & (pl.col("condition") == "scratch")))
    table = table1(scores, TASK_METRICS)
    md = table1_markdown(table).splitlines()
    assert "a cell over fewer seeds gives its own n" in md[0]
    rows = {line.split(" | ")[1]: line for line in md[4:]}
    assert rows["RTE"] == "| bert-base-uncased | RTE | 54.7 ± 2.0 | 52.7 (n=1) | 66.6 ± 2.0 | Acc | 277 | 3 |"
    # a MISSING column gets no n; the CSV's cells stay plain
    assert f"| {MISSING} |" in rows["STS-B"] and "(n=" not in rows["STS-B"]
    assert table.filter(pl.col("task") == "STS-B")["n_scratch"].item() == 0
    assert table.filter(pl.col("task") == "RTE")["scratch"].item() == "52.7"
