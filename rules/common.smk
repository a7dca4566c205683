# Config validation, wildcard constraints and the small named helpers the rules use.
import re
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from headlab.config_checks import check_config, model_specs
from headlab.framenet import corpus_location
from headlab.glue_data import local_split_path
from headlab.tasks import get_task

validate(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
check_config(config)

MODELS = list(model_specs(config))
TASKS = [get_task(name).name for name in config["tasks"]]
MODES = config["ablation"]["modes"]
MASKS = {mask["name"]: mask["heads"] for mask in config["ablation"]["masks"]}
PRIMARY_MODEL = config["primary_model"] or MODELS[0]
INITS = ["pretrained", "random"]


def one_of(names):
    """A wildcard constraint matching exactly one of `names`."""
    return "|".join(re.escape(name) for name in names)


wildcard_constraints:
    model=one_of(MODELS),
    task=one_of(TASKS),
    init=one_of(INITS),
    mode=one_of(["uniform", "zero"]),
    mask=one_of(MASKS) if MASKS else "(?!)",
    split="train|dev",


def library(*modules):
    """Library modules a rule's numbers depend on: editing one reruns exactly its jobs."""
    return [str(Path(workflow.basedir) / "scripts" / "headlab" / m) for m in modules]


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
        "source": data["source"],
        "local_dir": data["local_dir"],
        "files": data["files"].get(wildcards.task),
        "hub_revision": data["hub_revision"],
        "cap": data[cap_key],
        "seed": data["seed"],
    }


def local_data_file(wildcards):
    """The TSV a local-source split is read from (so editing it reruns prepare_task); none for the hub."""
    data = config["data"]
    if data["source"] != "local":
        return []
    task = get_task(wildcards.task)
    return str(
        local_split_path(
            data["local_dir"], task, wildcards.split, data["files"].get(task.name)
        )
    )


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


def sweeps_of(model, mode):
    """The full-sweep tables of one model and mode, one per task."""
    return expand(
        "results/{model}/{task}/ablation/{mode}/sweep.parquet",
        model=model,
        task=TASKS,
        mode=mode,
    )


def get_final_output():
    """Everything `snakemake all` builds: figures 3 (with a FrameNet folder), 8 and 9, Table 1, all tables."""
    targets = [
        "results/figure8.pdf",
        "results/figure9.pdf",
        "results/table1.csv",
        "results/ablation.parquet",
        "results/ablation_summary.parquet",
    ]
    targets += expand(
        "results/{model}/figure{number}_{mode}.pdf",
        model=MODELS,
        number=[8, 9],
        mode=MODES,
    )
    if config["framenet"]["corpus_dir"]:
        targets += ["results/figure3.pdf"]
        targets += expand("results/{model}/figure3.pdf", model=MODELS)
    return targets
