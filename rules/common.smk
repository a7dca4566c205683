# Config validation, wildcard constraints and the small named helpers the rules use.
import re
import sys
from pathlib import Path

from snakemake.utils import validate

# This workflow's own library, first on the path of the parse and of every job: Snakemake puts a
# script's folder after site-packages, where `pip install -e` of another clone would win.
LIBRARY = str(Path(workflow.basedir).resolve() / "scripts")
sys.path.insert(0, LIBRARY)

from headlab.workflow.library import use_library

use_library(LIBRARY)

from headlab.workflow.checks import check_config, check_renamed_keys, model_specs
from headlab.data.framenet import corpus_location
from headlab.data.glue import GlueDataError, local_split_path, resolve_source
from headlab.data.glue_hub import start_problem, unreachable_message
from headlab.conditions import (
    ATTENTION_CONDITIONS,
    FINETUNED,
    PRETRAINED,
    SCRATCH,
    TRAINED,
    is_trained,
)
from headlab.workflow.dependencies import job_code
from headlab.data.tasks import get_task

check_renamed_keys(config)
validate(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
check_config(config)

MODELS = list(model_specs(config))
TASKS = [get_task(name).name for name in config["tasks"]]
MODES = config["ablation"]["modes"]
MASKS = {mask["name"]: mask["heads"] for mask in config["ablation"]["masks"]}
# The mode of Kovaleva's disabling delta that orders a pruning curve and whose effects the
# replication compares across seeds: the paper's uniform when it is swept, else the first mode.
DELTA_MODE = "uniform" if "uniform" in MODES else MODES[0]
PRIMARY_MODEL = config["primary_model"] or MODELS[0]
# Fine-tuning seeds: a wildcard of fine-tuning, scoring, ablation and the attention analyses of
# the fine-tuned models. The claims read every seed; the attention figures (1, 2, 5-7) show one
# (finetune.analysis_seed, default the first).
SEEDS = [str(seed) for seed in config["finetune"]["seeds"]]
ANALYSIS_SEED = str(config["finetune"].get("analysis_seed") or SEEDS[0])
# The seeds of condition scratch (finetune.scratch_seeds, null: every seed), a subset of SEEDS:
# rule evaluate of another seed scores pretrained and finetuned only.
SCRATCH_SEEDS = [str(seed) for seed in config["finetune"].get("scratch_seeds") or SEEDS]
if not set(SCRATCH_SEEDS) <= set(SEEDS):
    raise ValueError(
        f"finetune.scratch_seeds {SCRATCH_SEEDS} must be a subset of finetune.seeds {SEEDS}: "
        "a seed's scratch scores are evaluated with its finetuned model"
    )
# finetune.* as the training settings of one seed (the seed comes from the wildcard), and the
# per-task overrides of finetune.by_task (a task absent there trains with finetune.*; changing one
# task's entry reruns that task's jobs only; the checks ensure each names a GLUE task).
SEED_KEYS = ("seeds", "scratch_seeds", "analysis_seed", "by_task")
TRAINING_SETTINGS = {k: v for k, v in config["finetune"].items() if k not in SEED_KEYS}
TASK_TRAINING = {
    get_task(name).name: entry
    for name, entry in (config["finetune"].get("by_task") or {}).items()
}
# Attention statistics are computed on the pretrained encoder (once: no seed) and on the model
# fine-tuned from it (per seed); the words are headlab.conditions'.
ATTENTION = list(ATTENTION_CONDITIONS)
# data.source auto: the local GLUE folder when it is there, else the hub (said once, at start).
DATA_SOURCE = resolve_source(config["data"]["source"], config["data"]["local_dir"])
if config["data"]["source"] == "auto":
    GLUE_FOLDER = config["data"]["local_dir"]
    if DATA_SOURCE == "local":
        print(f"data.source auto: GLUE from {GLUE_FOLDER}", file=sys.stderr)
    else:
        print(
            f"data.source auto: no GLUE folder at data.local_dir ({GLUE_FOLDER}), "
            "so GLUE comes from the Hugging Face hub (nyu-mll/glue)",
            file=sys.stderr,
        )


def one_of(names):
    """A wildcard constraint matching exactly one of `names`."""
    return "|".join(re.escape(name) for name in names)


wildcard_constraints:
    model=one_of(MODELS),
    task=one_of(TASKS),
    seed=one_of(SEEDS),
    mode=one_of(["uniform", "zero", "mean"]),
    mask=one_of(MASKS) if MASKS else "(?!)",
    split="train|dev",
    condition=one_of(TRAINED),  # a checkpoint's; the pretrained encoder's rules have no condition wildcard


def training_settings(wildcards):
    """finetune.* of the job's task: its finetune.by_task entry over the shared settings."""
    return {**TRAINING_SETTINGS, **TASK_TRAINING.get(wildcards.task, {})}


def model_entry(wildcards):
    """The config entry of the model alias in the job's wildcards."""
    return next(m for m in config["models"] if m["alias"] == wildcards.model)


def data_params(wildcards):
    """What prepare_task needs to know about the data source and sampling of one split."""
    data = config["data"]
    cap_key = (
        "max_train_examples" if wildcards.split == "train" else "max_eval_examples"
    )
    return {
        "source": DATA_SOURCE,
        "local_dir": data["local_dir"],
        "files": data["files"].get(wildcards.task),
        "hub_revision": data["hub_revision"],
        "cap": task_cap(data[cap_key], wildcards.task),
        "seed": data["seed"],
    }


def task_cap(cap, task):
    """A data.max_*_examples value for one task: the value, or its entry when it is a mapping."""
    return cap.get(task) if isinstance(cap, dict) else cap


def local_data_file(wildcards):
    """The TSV a local-source split is read from (so editing it reruns prepare_task); none for the
    hub, whose split is checked here instead while the jobs are planned (not in a dry run):
    offline or unreachable with no cached copy, the run stops before any job starts, with what
    to do."""
    data = config["data"]
    task = get_task(wildcards.task)
    if DATA_SOURCE != "local":
        table = Path("resources/glue") / wildcards.task / f"{wildcards.split}.parquet"
        # a dry run only plans: it shows the jobs even where the hub cannot be reached
        problem = None if table.exists() or workflow.dryrun else start_problem()
        if problem:
            raise GlueDataError(unreachable_message(task, wildcards.split, problem))
        return []
    return str(
        local_split_path(
            data["local_dir"], task, wildcards.split, data["files"].get(task.name)
        )
    )


def mean_reference_table(wildcards):
    """The split mode mean takes its reference means over (ablation.mean_reference.split)."""
    split = config["ablation"]["mean_reference"]["split"]
    return f"resources/glue/{wildcards.task}/{split}.parquet"


def importance_sample_table(wildcards):
    """The split Michel's importance is taken over (importance.split)."""
    return f"resources/glue/{wildcards.task}/{config['importance']['split']}.parquet"


def means_of_modes(wildcards):
    """{means: the checkpoint's head_means table} when mode mean is swept, else nothing."""
    if "mean" not in MODES:
        return {}
    return {
        "means": f"results/{wildcards.model}/{wildcards.task}/seed-{wildcards.seed}/head_means.parquet"
    }


def means_of_mode(wildcards):
    """{means: the checkpoint's head_means table} for mode mean, else nothing."""
    if wildcards.mode != "mean":
        return {}
    return {
        "means": f"results/{wildcards.model}/{wildcards.task}/seed-{wildcards.seed}/head_means.parquet"
    }


def named_mask(wildcards):
    """[name, heads] of the named mask in the job's wildcards."""
    return [wildcards.mask, MASKS[wildcards.mask]]


def framenet_corpus(wildcards):
    """The FrameNet folder (framenet.corpus_dir); a clear error when it is unset or missing."""
    return corpus_location(config["framenet"]["corpus_dir"])


def framenet_lu_index(wildcards):
    """The corpus's luIndex.xml, so a different LU selection reruns the sentence table."""
    return corpus_location(config["framenet"]["corpus_dir"], "luIndex.xml")


def figure_metrics(tasks):
    """Metric shown per task: figures.metric, else the task's primary metric."""
    chosen = config["figures"]["metric"]
    return {t: chosen.get(t, get_task(t).primary_metric) for t in tasks}


def figure_title(what):
    """A params function giving the figure title of the job's model and mode."""

    def title(wildcards):
        return f"{wildcards.model}: one {what} disabled ({wildcards.mode})"

    return title


def statistics_of(model, mode):
    """The sweep statistics (every seed) of one model and mode, one table per task."""
    return expand(
        "results/{model}/{task}/ablation/{mode}/statistics.parquet",
        model=model,
        task=TASKS,
        mode=mode,
    )


def agreement_tables(model):
    """The mode_agreement tables of one model (every task) with two modes or more, else none."""
    if len(MODES) < 2:
        return []
    return expand(
        "results/{model}/{task}/ablation/agreement.parquet", model=model, task=TASKS
    )


def framenet_effect_table(model):
    """The Sec. 5 experiment's table of one model when the FrameNet folder is there, else none
    (the claims table then says why its row is not run)."""
    if FRAMENET_MISSING:
        return []
    return f"results/{model}/framenet_effect.parquet"


def framenet_missing():
    """Why the FrameNet experiments (Figure 3, Sec. 5) cannot run (no framenet.corpus_dir, or no
    such folder), or None: decided once, as FRAMENET_MISSING, for `all` and the claims alike.
    """
    corpus = config["framenet"]["corpus_dir"]
    if not corpus:
        return "framenet.corpus_dir is null"
    if not Path(corpus).expanduser().is_dir():
        return f"framenet.corpus_dir {corpus} is not a folder (from {Path.cwd()})"
    return None


FRAMENET_MISSING = framenet_missing()
if config["framenet"]["corpus_dir"] and FRAMENET_MISSING:
    print(
        f"{FRAMENET_MISSING}: Figure 3 and the Sec. 5 experiment are left out of `all`, "
        "and the claims that need them say `not run`",
        file=sys.stderr,
    )


def analysis_path(kind, condition="{condition}", seed="{seed}"):
    """Where an attention analysis table (`kind`: attention, features, token_to_token,
    cls_attention, patterns) of one condition lies: the pretrained encoder's once per model and
    task, a fine-tuned condition's under the folder of its fine-tuning seed."""
    if condition in ATTENTION and not is_trained(condition):
        return f"results/{{model}}/{{task}}/{kind}/{condition}.parquet"
    return f"results/{{model}}/{{task}}/seed-{seed}/{kind}/{condition}.parquet"


def feature_checkpoint(wildcards):
    """The checkpoint a job of a fine-tuned condition reads (feature_attention, attention_stats,
    pattern_classes): its seed's checkpoint of that condition (headlab.conditions).
    """
    return expand(
        rules.finetune.output.checkpoint,
        model=wildcards.model,
        task=wildcards.task,
        condition=wildcards.condition,
        seed=wildcards.seed,
    )


def scratch_checkpoint(wildcards):
    """The scratch checkpoint of the job's seed when it is one of finetune.scratch_seeds, else
    none (rule evaluate then scores pretrained and finetuned only)."""
    if wildcards.seed not in SCRATCH_SEEDS:
        return []
    return expand(
        rules.finetune.output.checkpoint,
        model=wildcards.model,
        task=wildcards.task,
        seed=wildcards.seed,
        condition=SCRATCH,
    )


def feature_tables_of(model, kind):
    """One model's feature_attention tables of one kind (features, token_to_token,
    cls_attention): every task, both conditions, the fine-tuned one of finetune.analysis_seed.
    """
    return [
        path
        for condition in ATTENTION
        for path in expand(
            analysis_path(kind, condition, ANALYSIS_SEED), model=model, task=TASKS
        )
    ]


def model_alias(wildcards):
    """The model alias of the job's wildcards (a figure's label)."""
    return wildcards.model


def pattern_labels(wildcards):
    """The hand labels (patterns.labels) train_pattern_cnn learns from; an error when unset."""
    labels = config["patterns"]["labels"]
    if not labels:
        raise ValueError(
            "patterns.labels is null, so there is no CNN to train: label maps with "
            "`python -m headlab.annotate` and set patterns.labels to the labels file"
        )
    return labels


def pattern_cnn_model(wildcards):
    """{cnn: the model's CNN} when patterns.labels is set (the CNN classifies), else {}."""
    if not config["patterns"]["labels"]:
        return {}
    return {"cnn": f"results/{wildcards.model}/pattern_cnn/model.pt"}


def pretrained_pattern_cnn_inputs(wildcards):
    """The inputs of pretrained_pattern_classes besides the statistics when the CNN classifies
    (else {}): the CNN and the dev table."""
    inputs = pattern_cnn_model(wildcards)
    if inputs:
        inputs["dev"] = f"resources/glue/{wildcards.task}/dev.parquet"
    return inputs


def pattern_cnn_inputs(wildcards):
    """pretrained_pattern_cnn_inputs of a fine-tuned condition: and its checkpoint."""
    inputs = pretrained_pattern_cnn_inputs(wildcards)
    if inputs:
        inputs["checkpoint"] = feature_checkpoint(wildcards)
    return inputs


def get_final_output():
    """Everything `snakemake all` builds: figures 3 (with a FrameNet folder), 1, 2, 5 to 9, Table 1, the learning check, all tables."""
    targets = [
        "results/figure5.pdf",
        "results/figure6.pdf",
        "results/figure7.pdf",
        "results/figure8.pdf",
        "results/figure9.pdf",
        "results/table1.csv",
        "results/learning.md",
        "results/claims.md",
        "results/ablation.parquet",
        "results/ablation_summary.parquet",
        "results/ablation_statistics.parquet",
        "results/importance.pdf",
        "results/attribution.pdf",
        "results/pruning.pdf",
        "results/replication.pdf",
        "results/report/README.md",
    ]
    if len(MODES) >= 2:
        targets += ["results/mode_agreement.pdf"]
    targets += expand(
        "results/{model}/figure{number}_{mode}.pdf",
        model=MODELS,
        number=[8, 9],
        mode=MODES,
    )
    targets += expand(
        "results/{model}/figure{number}.pdf", model=MODELS, number=[5, 6, 7]
    )
    for condition in ATTENTION:  # every seed's, as the claims read them
        targets += expand(
            analysis_path("attention", condition), model=MODELS, task=TASKS, seed=SEEDS
        )
    targets += expand(
        "results/{model}/{task}/seed-{seed}/drift.parquet",
        model=MODELS,
        task=TASKS,
        seed=SEEDS,
    )
    if not FRAMENET_MISSING:
        targets += ["results/figure3.pdf"]
        targets += expand("results/{model}/figure3.pdf", model=MODELS)
    targets += ["results/figure1.pdf", "results/figure2.pdf"]
    targets += expand(
        analysis_path("patterns", config["patterns"]["condition"], ANALYSIS_SEED),
        model=MODELS,
        task=TASKS,
    )
    if config["patterns"]["labels"]:
        targets += expand("results/{model}/pattern_cnn/metrics.parquet", model=MODELS)
    return targets
