"""GLUE task registry and data loading: synthetic TSV fixtures, hub normalisation, real files."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import ClassLabel, Dataset, Features, Value

from headlab.data.glue import local_split_path, prepare_split, sample_rows
from headlab.data.glue_hub import normalise_hub_dataset, read_hub_dataset
from headlab.data.glue_table import GlueDataError, SkippedLine, arrow_schema
from headlab.data.glue_tsv import read_glue_tsv
from headlab.data.tasks import TASKS, TaskSpec, UnknownTaskError, get_task
from headlab.io.parquet import read_metadata, write_table

MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
MNLI_HEADER = "\t".join(get_task("MNLI").tsv_positional_columns)


def write_lines(path: Path, lines: list[str], *, bom: bool = False, ending: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ending.join(lines) + ending
    path.write_bytes((("\ufeff" if bom else "") + text).encode("utf-8"))
    return path


def mrpc_lines() -> list[str]:
    return [
        MRPC_HEADER,
        '1\t100\t101\tHe said "yes.\tShe said no.',  # line 2: unbalanced quote, kept verbatim
        "0\t102\t103\t  A b.  \tC d.",  # line 3: surrounding spaces stripped
        "2\t104\t105\tBad label.\tX.",  # line 4: label not in ("0", "1")
        "1\t106\t107\t   \tEmpty a.",  # line 5: empty text
        "1\t108\t109\tToo\tmany\tfields",  # line 6: 6 fields
        "",  # line 7: blank
        "0\t110\t111\tLast one.\tEnd.",  # line 8
    ]


@pytest.fixture
def mrpc_dir(tmp_path: Path) -> Path:
    write_lines(tmp_path / "glue" / "MRPC" / "dev.tsv", mrpc_lines(), bom=True)
    return tmp_path / "glue"


# --------------------------------------------------------------------------------------------
# Task registry


def test_registry_has_the_eight_tasks_with_consistent_specs() -> None:
    assert list(TASKS) == ["MRPC", "STS-B", "SST-2", "QQP", "RTE", "QNLI", "MNLI", "CoLA"]
    assert [t.hub_config for t in TASKS.values()] == [
        "mrpc",
        "stsb",
        "sst2",
        "qqp",
        "rte",
        "qnli",
        "mnli",
        "cola",
    ]
    assert get_task("STS-B").num_labels == 1 and get_task("STS-B").labels == ()
    assert get_task("MNLI").num_labels == 3
    assert get_task("MNLI").labels == ("entailment", "neutral", "contradiction")
    assert get_task("MNLI").hub_text_columns == ("premise", "hypothesis")
    assert get_task("MNLI").splits["dev"].hub == "validation_matched"
    assert get_task("MNLI").splits["dev"].file == "dev_matched.tsv"
    assert get_task("RTE").splits["dev"].hub == "validation"
    assert get_task("MRPC").metrics == ("f1", "accuracy")
    assert get_task("CoLA").primary_metric == "matthews"
    assert get_task("SST-2").is_pair is False and get_task("QNLI").is_pair is True
    assert all(spec.num_labels == len(spec.labels) for spec in TASKS.values() if not spec.is_regression)


def test_task_spec_is_frozen_and_hashable() -> None:
    spec = get_task("MRPC")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "X"  # type: ignore[misc]
    assert len({spec, get_task("MRPC"), get_task("RTE")}) == 2


def test_task_spec_rejects_inconsistent_fields() -> None:
    with pytest.raises(ValueError, match="tsv_positional_columns lacks"):
        dataclasses.replace(get_task("SST-2"), tsv_label_column="polarity")


def test_unknown_task_names_the_bad_name_and_the_valid_ones() -> None:
    with pytest.raises(UnknownTaskError) as info:
        get_task("MRPCC")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "'MRPCC'" in message
    assert all(name in message for name in TASKS)


# --------------------------------------------------------------------------------------------
# TSV parsing


def test_mrpc_with_bom_parses_values_and_skips_malformed_lines(mrpc_dir: Path) -> None:
    frame, skipped = read_glue_tsv(mrpc_dir / "MRPC" / "dev.tsv", get_task("MRPC"))
    assert frame.schema == {"row": pl.Int64, "text_a": pl.Utf8, "text_b": pl.Utf8, "label": pl.Int64}
    assert frame.rows() == [
        (2, 'He said "yes.', "She said no.", 1),
        (3, "A b.", "C d.", 0),
        (8, "Last one.", "End.", 0),
    ]
    assert skipped == [
        SkippedLine(4, "label '2' is not one of ['0', '1']"),
        SkippedLine(5, "empty text in column '#1 String'"),
        SkippedLine(6, "expected 5 tab-separated fields, found 6"),
        SkippedLine(7, "blank line"),
    ]


def test_crlf_line_endings_are_cut(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "dev.tsv", mrpc_lines()[:3], bom=True, ending="\r\n")
    frame, skipped = read_glue_tsv(path, get_task("MRPC"))
    assert frame["text_b"].to_list() == ["She said no.", "C d."]
    assert frame["label"].to_list() == [1, 0]
    assert skipped == []


def test_stsb_scores_are_floats_and_bad_scores_are_skipped(tmp_path: Path) -> None:
    lines = [
        STSB_HEADER,
        "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man is dancing.\tA man dances.\t5.000",
        "1\tmain-captions\tMSRvid\t2012test\t0002\tnone\tnone\tA cat.\tA dog.\t0.5",
        "2\tmain-news\theadlines\t2015\t0003\tnone\tnone\tOne.\tTwo.\tabc",
        "3\tmain-news\theadlines\t2015\t0004\tnone\tnone\tOne.\tTwo.\tnan",
        "4\tmain-news\theadlines\t2015\t0005\tnone\tnone\tThree.\tFour.\t3.8",
    ]
    frame, skipped = read_glue_tsv(write_lines(tmp_path / "dev.tsv", lines), get_task("STS-B"))
    assert frame.schema["label"] == pl.Float64
    assert frame.rows() == [
        (2, "A man is dancing.", "A man dances.", 5.0),
        (3, "A cat.", "A dog.", 0.5),
        (6, "Three.", "Four.", 3.8),
    ]
    assert skipped == [
        SkippedLine(4, "score 'abc' is not a finite number"),
        SkippedLine(5, "score 'nan' is not a finite number"),
    ]


def test_headerless_qqp_uses_positional_columns(tmp_path: Path) -> None:
    lines = [
        "133273\t213221\t213222\tHow is life?\tWhich level is enough for jlpt5? 0",  # 5 fields
        "360472\t364011\t490273\tWhat causes it?\tWhat can cause it?\t0",
        "119056\t193387\t193388\tHow not to feel guilty?\tI don't believe it.\t1",
        "1\t2\t3\tMissing a tab here?\t1",  # 5 fields: the question2/label tab is missing
    ]
    frame, skipped = read_glue_tsv(write_lines(tmp_path / "subset.tsv", lines), get_task("QQP"))
    assert frame.rows() == [
        (2, "What causes it?", "What can cause it?", 0),
        (3, "How not to feel guilty?", "I don't believe it.", 1),
    ]
    assert skipped == [
        SkippedLine(1, "expected 6 tab-separated fields, found 5"),
        SkippedLine(4, "expected 6 tab-separated fields, found 5"),
    ]


def test_sst2_keeps_quotes_strips_trailing_space_and_maps_labels(tmp_path: Path) -> None:
    lines = [
        "sentence\tlabel",
        'it \'s a "funny" movie . \t1',
        "don't \"quote me \t0",
        "a good film . \tpositive",
    ]
    frame, skipped = read_glue_tsv(write_lines(tmp_path / "dev.tsv", lines), get_task("SST-2"))
    assert frame.rows() == [
        (2, 'it \'s a "funny" movie .', None, 1),
        (3, "don't \"quote me", None, 0),
    ]
    assert skipped == [SkippedLine(4, "label 'positive' is not one of ['0', '1']")]


def test_header_columns_are_found_by_name_in_any_order(tmp_path: Path) -> None:
    lines = ["label\tsentence", "1\tgreat .", "0\tbad ."]
    frame, _ = read_glue_tsv(write_lines(tmp_path / "dev.tsv", lines), get_task("SST-2"))
    assert frame.rows() == [(2, "great .", None, 1), (3, "bad .", None, 0)]


def test_headerless_file_treats_line_one_as_data(tmp_path: Path) -> None:
    lines = ["0\tA premise.\tA hypothesis.\tnot_entailment", "1\tP.\tH.\tentailment"]
    frame, skipped = read_glue_tsv(write_lines(tmp_path / "dev.tsv", lines), get_task("RTE"))
    assert frame.rows() == [(1, "A premise.", "A hypothesis.", 1), (2, "P.", "H.", 0)]
    assert skipped == []


def test_cola_is_read_positionally(tmp_path: Path) -> None:
    lines = ["gj04\t1\t\tOur friends won't buy this analysis.", "gj04\t0\t*\tThey drank the pub."]
    frame, _ = read_glue_tsv(write_lines(tmp_path / "dev.tsv", lines), get_task("CoLA"))
    assert frame.rows() == [
        (1, "Our friends won't buy this analysis.", None, 1),
        (2, "They drank the pub.", None, 0),
    ]


def test_mnli_dev_matched_file_and_gold_labels(tmp_path: Path) -> None:
    def line(index: int, premise: str, hypothesis: str, gold: str) -> str:
        parses = ["( x )"] * 4
        votes = [gold, gold, "", "", ""]
        return "\t".join(
            [str(index), "31193", f"{index}n", "fiction", *parses, premise, hypothesis, *votes, gold]
        )

    lines = [
        MNLI_HEADER,
        line(0, "The new rights are nice.", "Everyone likes the rights.", "neutral"),
        line(1, "This site includes a list.", "The site has no list.", "contradiction"),
        line(2, "Premise.", "Hypothesis.", "-"),
        line(3, "It rains.", "Water falls.", "entailment"),
    ]
    write_lines(tmp_path / "MNLI" / "dev_matched.tsv", lines)
    task = get_task("MNLI")
    path = local_split_path(tmp_path, task, "dev")
    assert path == tmp_path / "MNLI" / "dev_matched.tsv"
    frame, skipped = read_glue_tsv(path, task)
    assert frame["label"].to_list() == [1, 2, 0]
    assert frame["text_a"].to_list() == [
        "The new rights are nice.",
        "This site includes a list.",
        "It rains.",
    ]
    assert frame["row"].to_list() == [2, 3, 5]
    assert skipped == [SkippedLine(4, "label '-' is not one of ['entailment', 'neutral', 'contradiction']")]


def test_invalid_utf8_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_bytes(b"sentence\tlabel\nfine .\t1\nbad \xff byte\t0\n")
    frame, skipped = read_glue_tsv(path, get_task("SST-2"))
    assert frame["row"].to_list() == [2]
    assert skipped == [SkippedLine(3, "not valid UTF-8")]


def test_missing_empty_and_rowless_files_raise(tmp_path: Path) -> None:
    task = get_task("SST-2")
    missing = tmp_path / "nope.tsv"
    with pytest.raises(GlueDataError, match=r"nope\.tsv does not exist; expected .*'sentence'"):
        read_glue_tsv(missing, task)
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    with pytest.raises(GlueDataError, match=r"empty\.tsv is empty"):
        read_glue_tsv(empty, task)
    header_only = write_lines(tmp_path / "header.tsv", ["sentence\tlabel"])
    with pytest.raises(GlueDataError, match=r"header\.tsv has no valid rows \(no data lines\)"):
        read_glue_tsv(header_only, task)
    all_bad = write_lines(tmp_path / "bad.tsv", ["sentence\tlabel", "x\t7"])
    with pytest.raises(GlueDataError, match=r"bad\.tsv has no valid rows .*line 2: label '7'"):
        read_glue_tsv(all_bad, task)


# --------------------------------------------------------------------------------------------
# Paths


def test_local_split_path_layout_and_overrides(tmp_path: Path) -> None:
    write_lines(tmp_path / "QQP" / "subset_23497.tsv", ["1\t2\t3\ta?\tb?\t0"])
    task = get_task("QQP")
    assert local_split_path(tmp_path, task, "dev", {"dev": "subset_23497.tsv"}) == (
        tmp_path / "QQP" / "subset_23497.tsv"
    )
    with pytest.raises(
        GlueDataError, match=r"QQP[/\\]dev\.tsv does not exist; .tsv files in .*: subset_23497\.tsv"
    ):
        local_split_path(tmp_path, task, "dev")
    with pytest.raises(GlueDataError, match="unknown splits \\['validation'\\]"):
        local_split_path(tmp_path, task, "dev", {"validation": "subset_23497.tsv"})
    with pytest.raises(GlueDataError, match="unknown split 'test'"):
        local_split_path(tmp_path, task, "test")


def test_missing_task_folder_lists_existing_folders(tmp_path: Path) -> None:
    (tmp_path / "SST-2").mkdir()
    with pytest.raises(GlueDataError, match=r"RTE does not exist .*folders in .*: SST-2"):
        local_split_path(tmp_path, get_task("RTE"), "dev")


# --------------------------------------------------------------------------------------------
# Hub normalisation (in-memory datasets, no network)


def test_hub_pair_task_uses_idx_and_class_indices() -> None:
    features = Features(
        {
            "sentence1": Value("string"),
            "sentence2": Value("string"),
            "label": ClassLabel(names=["not_equivalent", "equivalent"]),
            "idx": Value("int32"),
        }
    )
    data = {"sentence1": ["A.", " B. "], "sentence2": ["C.", "D."], "label": [1, 0], "idx": [5, 9]}
    frame = normalise_hub_dataset(Dataset.from_dict(data, features=features), get_task("MRPC"))
    assert frame.schema == {"row": pl.Int64, "text_a": pl.Utf8, "text_b": pl.Utf8, "label": pl.Int64}
    assert frame.rows() == [(5, "A.", "C.", 1), (9, "B.", "D.", 0)]


def test_hub_single_sentence_without_idx_and_test_labels() -> None:
    data = {"sentence": ["good . ", "bad . ", "unlabelled . "], "label": [1, 0, -1]}
    frame, skipped = read_hub_dataset(Dataset.from_dict(data), get_task("SST-2"))
    assert frame.rows() == [(0, "good .", None, 1), (1, "bad .", None, 0)]
    assert skipped == [SkippedLine(2, "label -1 is not a class index in 0..1")]


def test_hub_regression_and_mnli_columns() -> None:
    stsb = Dataset.from_dict({"sentence1": ["a"], "sentence2": ["b"], "label": [3.8], "idx": [0]})
    assert normalise_hub_dataset(stsb, get_task("STS-B")).rows() == [(0, "a", "b", 3.8)]
    mnli = Dataset.from_dict({"premise": ["p"], "hypothesis": ["h"], "label": [2], "idx": [7]})
    assert normalise_hub_dataset(mnli, get_task("MNLI")).rows() == [(7, "p", "h", 2)]


def test_hub_missing_column_raises() -> None:
    dataset = Dataset.from_dict({"sentence1": ["a"], "label": [0]})
    with pytest.raises(GlueDataError, match=r"lacks columns \['sentence2'\]"):
        normalise_hub_dataset(dataset, get_task("RTE"))


# --------------------------------------------------------------------------------------------
# Sampling


def test_sample_rows_is_deterministic_and_keeps_order() -> None:
    frame = pl.DataFrame({"row": list(range(100, 120)), "label": [0, 1] * 10})
    first = sample_rows(frame, 5, seed=7)
    assert first.equals(sample_rows(frame, 5, seed=7))
    rows = first["row"].to_list()
    assert len(rows) == 5 and rows == sorted(rows) and set(rows) <= set(range(100, 120))
    assert not first.equals(sample_rows(frame, 5, seed=8))
    assert sample_rows(frame, None, seed=0) is frame
    assert sample_rows(frame, 20, seed=0) is frame
    with pytest.raises(ValueError, match="cap must be a positive"):
        sample_rows(frame, 0, seed=0)


# --------------------------------------------------------------------------------------------
# prepare_split and the Parquet file


def test_prepare_split_writes_fixed_schema_and_metadata(
    mrpc_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output = tmp_path / "out" / "mrpc_dev.parquet"
    log = logging.getLogger("test.prepare")
    with caplog.at_level(logging.INFO, logger="test.prepare"):
        written, returned = prepare_split("MRPC", "dev", "local", str(mrpc_dir), None, 2, 0, None, log)
    write_table(written, output, returned)  # as rule prepare_task writes it
    table = pq.read_table(output)
    assert table.schema.remove_metadata() == arrow_schema(get_task("MRPC"))
    assert table.schema.field("text_b").nullable and not table.schema.field("label").nullable
    assert table.num_rows == 2
    assert set(table.column("row").to_pylist()) <= {2, 3, 8}
    metadata = read_metadata(output)
    assert {k: metadata[k] for k in returned} == returned
    source = str(mrpc_dir / "MRPC" / "dev.tsv")
    assert returned["source_path"] == source
    assert (returned["task"], returned["split"], returned["source"]) == ("MRPC", "dev", "local")
    assert (returned["n_read"], returned["n_valid"], returned["n_skipped"], returned["n_written"]) == (
        7,
        3,
        4,
        2,
    )
    assert (returned["cap"], returned["seed"]) == (2, 0)
    assert returned["skipped"][0] == {"line": 4, "reason": "label '2' is not one of ['0', '1']"}
    assert "torch" in metadata  # provenance added by write_table
    assert f"{source}:6: expected 5 tab-separated fields, found 6" in caplog.messages
    assert any("read 7, skipped 4, valid 3, kept 2" in m for m in caplog.messages)


def test_prepare_split_regression_schema_and_skip_list_cap(tmp_path: Path) -> None:
    good = "0\tg\tf\t2012\t0\tnone\tnone\tA.\tB.\t4.2"
    bad = "1\tg\tf\t2012\t0\tnone\tnone\tA.\tB.\tx"
    write_lines(tmp_path / "STS-B" / "dev.tsv", [STSB_HEADER, good, *[bad] * 60])
    output = tmp_path / "stsb.parquet"
    written, metadata = prepare_split("STS-B", "dev", "local", tmp_path, None, None, 0, None)
    write_table(written, output, metadata)
    table = pq.read_table(output)
    assert table.schema.field("label").type == pa.float64()
    assert table.to_pylist() == [{"row": 2, "text_a": "A.", "text_b": "B.", "label": 4.2}]
    assert metadata["n_skipped"] == 60 and len(metadata["skipped"]) == 50
    assert metadata["label_counts"] is None


def test_prepare_split_rejects_bad_source_and_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(GlueDataError, match="unknown data source 'web'"):
        prepare_split("MRPC", "dev", "web", str(tmp_path), None, None, 0, None)
    with pytest.raises(GlueDataError, match="needs a data_dir"):
        prepare_split("MRPC", "dev", "local", None, None, None, 0, None)
    with pytest.raises(UnknownTaskError):
        prepare_split("MNLI-mm", "dev", "local", str(tmp_path), None, None, 0, None)
    assert not list(tmp_path.iterdir())  # nothing written


# --------------------------------------------------------------------------------------------
# Real GLUE files (shared/data, see PROVENANCE.md)


def real_glue_dir() -> Path:
    configured = os.environ.get("HEADLAB_GLUE_DIR")
    folder = (
        Path(configured) if configured else Path(__file__).resolve().parents[3] / "shared" / "data" / "glue"
    )
    if not folder.is_dir():
        pytest.skip(f"real GLUE data folder {folder} not found (set HEADLAB_GLUE_DIR)")
    return folder


def real_split(task_name: str, split: str, overrides: dict[str, str] | None = None) -> tuple[TaskSpec, Path]:
    task = get_task(task_name)
    try:
        return task, local_split_path(real_glue_dir(), task, split, overrides)
    except GlueDataError as error:
        pytest.skip(f"real GLUE file not found: {error}")


@pytest.mark.real
@pytest.mark.parametrize(
    ("task_name", "n_rows", "label", "n_label"),
    [
        ("MRPC", 408, "1", 279),
        ("RTE", 277, "entailment", 146),
        ("SST-2", 872, "1", 444),
        ("QNLI", 5463, "entailment", 2702),
    ],
)
def test_real_dev_counts(task_name: str, n_rows: int, label: str, n_label: int) -> None:
    task, path = real_split(task_name, "dev")
    frame, skipped = read_glue_tsv(path, task)
    assert skipped == []
    assert frame.height == n_rows
    assert frame["row"].to_list() == list(range(2, n_rows + 2))
    assert (frame["label"] == task.labels.index(label)).sum() == n_label


@pytest.mark.real
def test_real_sst2_and_mrpc_text_quirks() -> None:
    task, path = real_split("SST-2", "dev")
    frame, _ = read_glue_tsv(path, task)
    assert frame["text_a"][0] == "it 's a charming and often affecting journey ."
    task, path = real_split("MRPC", "dev")
    frame, _ = read_glue_tsv(path, task)
    assert frame["text_b"][0] == '"The foodservice pie business does not fit our long-term growth strategy.'


@pytest.mark.real
def test_real_stsb_dev_scores() -> None:
    task, path = real_split("STS-B", "dev")
    frame, skipped = read_glue_tsv(path, task)
    assert skipped == [] and frame.height == 1500
    assert frame["label"].min() >= 0.0 and frame["label"].max() <= 5.0


@pytest.mark.real
def test_real_qqp_subset_headerless_via_override() -> None:
    task, path = real_split("QQP", "dev", {"dev": "subset_23497.tsv"})
    frame, skipped = read_glue_tsv(path, task)
    assert skipped == [SkippedLine(1, "expected 6 tab-separated fields, found 5")]
    assert frame.height == 23496
    assert frame["row"][0] == 2
    assert frame["label"].value_counts(sort=True).rows() == [(0, 14749), (1, 8747)]
