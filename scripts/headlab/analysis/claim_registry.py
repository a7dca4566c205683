"""The claims registry: one declarative entry per claim of the card (`Claim`), the paper's first.

Each entry: its id, group (`paper` or `headlab`), section, the paper's sentence (short), the
paper's number and where it comes from (`PaperNumber`: the text, a table, or read off a figure
with that reading's uncertainty), the quantity we measure, the verdict rule, what the run needs,
and the function that computes it from the run's tables (`ClaimInputs`). `headlab.analysis.claims`
turns the registry into the card.
"""

from __future__ import annotations

import numpy as np

from headlab.analysis import ablation_claims as ablation
from headlab.analysis import attention_claims as attention
from headlab.analysis import feature_claims as features
from headlab.analysis import layer_claims as layers
from headlab.analysis import pattern_claims as patterns
from headlab.analysis.claim_rules import INTERVAL_RULE
from headlab.analysis.claim_types import Claim, PaperNumber
from headlab.analysis.condition_claims import condition_claim
from headlab.analysis.importance_claims import (
    disabling_replicates_claim,
    importance_agrees_claim,
    prunable_share_description,
)
from headlab.analysis.mode_claims import framenet_claim, framenet_heads_description, modes_agree_claim
from headlab.conditions import FINETUNED, PRETRAINED, SCRATCH

NO_NUMBER = PaperNumber("no number", "text")
ABOVE = INTERVAL_RULE.format(side="above")
BELOW = INTERVAL_RULE.format(side="below")
SWEEPS = "ablation sweeps (rule sweep_statistics)"

REGISTRY: tuple[Claim, ...] = (
    Claim(
        "patterns_repeat",
        "paper",
        "4.1 / Figure 2",
        "self-attention patterns repeat across heads and tasks",
        NO_NUMBER,
        "per class: spread (SD, sampling noise removed) of the class share over heads minus over tasks, "
        "mean over classes",
        "supported if the interval (bootstrap over examples) is above 0",
        "pattern classes of two tasks or more",
        patterns.patterns_repeat_claim,
    ),
    Claim(
        "heterogeneous_share",
        "paper",
        "4.1 / Figure 2",
        "the heterogeneous share lies between 32 % (MRPC) and 61 % (QQP)",
        PaperNumber("32 % (MRPC) to 61 % (QQP)", "text, Sec. 4.1", per_task={"MRPC": 32.0, "QQP": 61.0}),
        "per task: share of head maps classed heterogeneous (percent)",
        "supported if every task's interval lies in [32, 61] %; contradicted if one lies outside",
        "pattern classes",
        patterns.heterogeneous_share_claim,
    ),
    Claim(
        "framenet_heads",
        "paper",
        "4.2 / Figure 3",
        "two heads attend to core frame-semantic relations, scores 0.201 and 0.209",
        PaperNumber("0.201 and 0.209 (above the 99th percentile); sentences: not given", "text, Sec. 4.2"),
        "the sentences that pass the paper's filters; the top heads' scores",
        "a description (another model)",
        "framenet.corpus_dir",
        framenet_heads_description,
        needs_learning=False,  # the pre-trained encoder's heads
    ),
    Claim(
        "finetuning_helps",
        "paper",
        "4.3 / Table 1",
        "fine-tuning beats no fine-tuning on every task",
        PaperNumber("+35.9 points on average", "text, Sec. 4.3", value=35.9, average=True),
        "finetuned - pretrained per task; size: the mean over tasks (interval: the mean of the bounds)",
        ABOVE,
        "rule evaluate",
        lambda i: condition_claim(i, FINETUNED, PRETRAINED, +1, key=1),
        needs_learning=False,  # compares the conditions: what the learning check measures
    ),
    Claim(
        "pretraining_helps",
        "paper",
        "4.3 / Table 1",
        "fine-tuning from random weights is below fine-tuning from pre-trained weights on every task",
        NO_NUMBER,
        "finetuned - scratch per task",
        ABOVE,
        "rule evaluate",
        lambda i: condition_claim(i, FINETUNED, SCRATCH, +1, key=2),
        needs_learning=False,  # compares the conditions: what the learning check measures
    ),
    Claim(
        "scratch_below_pretrained",
        "paper",
        "4.3 / Table 1",
        "for STS-B and QNLI, random init + fine-tuning is below the pre-trained model without fine-tuning",
        PaperNumber(
            "STS-B 2.9 vs 33.1, QNLI 49.5 vs 52.8", "Table 1", per_task={"STS-B": -30.2, "QNLI": -3.3}
        ),
        "scratch - pretrained on STS-B and QNLI",
        BELOW,
        "tasks STS-B, QNLI",
        lambda i: condition_claim(i, SCRATCH, PRETRAINED, -1, ["STS-B", "QNLI"], key=3),
        needs_learning=False,  # compares the conditions: what the learning check measures
    ),
    Claim(
        "last_layers_change",
        "paper",
        "4.3 / Figure 5",
        "the last two layers change most in fine-tuning (all tasks but QQP)",
        NO_NUMBER,
        "per task and seed: the two layers of lowest mean cosine (pretrained vs fine-tuned attention)",
        "supported if they are the last two in every task and seed, contradicted if in none",
        "rule attention_drift",
        lambda i: attention.drift_claim(i.tasks, i.drift),
    ),
    Claim(
        "cls_then_sep",
        "paper",
        "4.4 / Figure 6",
        "earlier layers attend to [CLS], later layers to [SEP], in every task",
        NO_NUMBER,
        "per task and token: mean attention of the first half of the layers minus the second (CLS) "
        "or the reverse (SEP)",
        ABOVE,
        "rule attention_stats",
        lambda i: attention.cls_sep_claim(
            i.tasks,
            i.attention,
            i.settings.resamples,
            i.settings.alpha,
            np.random.default_rng([i.settings.seed, 7]),
        ),
    ),
    Claim(
        "sst2_more_sep",
        "paper",
        "4.4 / Figure 6",
        "SST-2 gives [SEP] more attention than the sentence-pair tasks (one [SEP] instead of two)",
        NO_NUMBER,
        "mean over layers and heads of the attention to [SEP], the maximum over the [SEP] tokens as the "
        "paper measures a feature: SST-2 minus each pair task",
        ABOVE.replace("task's", "pair's"),
        "rule attention_stats on SST-2 and a pair task",
        lambda i: attention.sst2_sep_claim(
            i.tasks,
            i.attention,
            i.settings.resamples,
            i.settings.alpha,
            np.random.default_rng([i.settings.seed, 8]),
        ),
    ),
    Claim(
        "features_negligible",
        "paper",
        "4.4 / Figure 6",
        "attention to nouns, objects and negation rises in some heads, negligible next to [CLS]/[SEP]",
        NO_NUMBER,
        "largest rise after fine-tuning; largest feature weight / largest [CLS]/[SEP] weight",
        "supported if every rise > 0 and every ratio < 0.1; contradicted if a rise <= 0 or a ratio >= 0.5",
        "rule feature_attention on MRPC, RTE, QQP or QNLI",
        features.features_negligible_claim,
    ),
    Claim(
        "relation_heads_diagonal",
        "paper",
        "4.5 / Figure 7",
        "verb-subject and pronoun-noun candidate heads coincide with diagonal heads",
        NO_NUMBER,
        "diagonal share of the 5 best candidate heads minus that of all heads",
        ABOVE,
        "rules feature_attention and pattern_classes",
        features.relation_heads_diagonal_claim,
    ),
    Claim(
        "cls_final_sep",
        "paper",
        "4.5 / Figure 7",
        "the final layer's [CLS] attends [SEP] most, punctuation on STS-B, RTE and QNLI",
        NO_NUMBER,
        "per task the token category the final layer's [CLS] attends most",
        "supported if as the paper says in every task, contradicted if in none",
        "rule feature_attention",
        features.cls_final_sep_claim,
    ),
    Claim(
        "some_head_helps",
        "paper",
        "4.6 / Figure 8",
        "disabling some single head improves every task",
        NO_NUMBER,
        "the simultaneous test over heads (Bonferroni over the heads)",
        "supported if it rejects in every task; contradicted if in some task every head's simultaneous "
        "upper bound (Bonferroni over heads x tasks) is below 0",
        SWEEPS,
        ablation.existence_claim,
    ),
    Claim(
        "random_head_helps",
        "paper",
        "4.6 / Figure 8",
        "disabling a random head helps on average for MRPC and RTE",
        NO_NUMBER,
        "mean delta over single heads",
        ABOVE,
        "tasks MRPC, RTE and " + SWEEPS,
        lambda i: ablation.selection_claim(i, "random_head", ["MRPC", "RTE"]),
    ),
    Claim(
        "layer_helps",
        "paper",
        "4.6 / Figure 9",
        "disabling a whole layer can improve the results",
        NO_NUMBER,
        "the best layer's delta per task",
        "supported if some layer improves with q < alpha / tasks (BH over layers); contradicted if every "
        "layer hurts in every task",
        SWEEPS,
        layers.layer_helps_claim,
    ),
    Claim(
        "layer1_helps_rte",
        "paper",
        "4.6 / Figure 9",
        "disabling the first layer helps RTE",
        PaperNumber("+3.2 points", "text, Sec. 4.6", value=3.2),
        "delta of mask L1 on RTE",
        ABOVE,
        "task RTE and " + SWEEPS,
        lambda i: ablation.layer_claim(i, "RTE", 1),
    ),
    Claim(
        "layer_cost_small",
        "paper",
        "4.6 / Figure 9",
        "for QNLI and MNLI, disabling a layer costs at most 0.2 points",
        PaperNumber("-0.2 points at most", "text, Sec. 4.6", value=-0.2),
        "the most harmful layer's delta",
        "supported if every layer's lower bound is >= -0.2 points; contradicted if one is clearly below",
        "tasks QNLI or MNLI and " + SWEEPS,
        layers.layer_cost_small_claim,
    ),
    Claim(
        "framenet_either_head",
        "paper",
        "5",
        "disabling either FrameNet head alone does not hurt any task",
        NO_NUMBER,
        "each top FrameNet head's single-head delta in every task",
        "contradicted if one is below 0 with p < alpha / m; supported if every lower bound is above "
        "-claims.no_harm_margin",
        "framenet.corpus_dir and " + SWEEPS,
        layers.framenet_either_head_claim,
    ),
    Claim(
        "pair_heads_matter",
        "paper",
        "5 / Figure 8",
        "STS-B and RTE both rely on the same pair of heads (L2-H12, L4-H1): disabling either hurts both",
        NO_NUMBER,
        "each head's delta on STS-B and RTE",
        BELOW.replace("task's", "task x head's"),
        "tasks STS-B, RTE; a 12 x 12 model or claims.pair_heads_by_model",
        ablation.pair_claim,
    ),
    Claim(
        "pair_heads_overlap",
        "paper",
        "5",
        "the STS-B/RTE pair of heads attends to words that occur in both sentences",
        NO_NUMBER,
        "per example: the head's attention from one sentence to the other's shared words minus the "
        "mean over every head (rule attention_stats, statistic overlap)",
        ABOVE.replace("task's", "task x head's"),
        "tasks STS-B, RTE; a 12 x 12 model or claims.pair_heads_by_model",
        attention.pair_overlap_claim,
    ),
    Claim(
        "heads_impact_differs",
        "paper",
        "abstract / Figure 8",
        "the impact of disabling a head differs across tasks",
        NO_NUMBER,
        "Spearman correlation of the per-head deltas of every pair of tasks",
        "supported if every pair's upper bound is below claims.agreement_threshold; contradicted if one "
        "pair's lower bound is above it",
        "two tasks and " + SWEEPS,
        layers.heads_impact_differs_claim,
    ),
    Claim(
        "some_head_helps_naive",
        "headlab",
        "4.6 / Figure 8",
        "the best single head's gain, chosen and scored on the same dev examples (the paper's number)",
        PaperNumber("+0.1 (STS-B) to +1.2 (MRPC)", "text, Sec. 4.6", per_task={"STS-B": 0.1, "MRPC": 1.2}),
        "the best head's delta",
        "a description: the largest of many noisy deltas is biased upward",
        SWEEPS,
        ablation.naive_description,
    ),
    Claim(
        "some_head_helps_held_out",
        "headlab",
        "4.6 / Figure 8",
        "does a chosen head replicate? (chosen on one half of the dev set, scored on the other, both ways)",
        NO_NUMBER,
        "the cross-fitted best head's delta",
        "supported if every task's interval is above 0; never contradicted",
        SWEEPS,
        ablation.held_out_claim,
    ),
    Claim(
        "modes_agree",
        "headlab",
        "4.6",
        "do uniform, zero and mean disabling agree on which heads matter?",
        NO_NUMBER,
        "noise-corrected correlation of per-head deltas, every pair of modes",
        "supported if every interval is above claims.agreement_threshold, contradicted if one is below",
        "two ablation.modes or more",
        lambda i: modes_agree_claim(i.agreement, list(i.modes), i.agreement_threshold),
    ),
    Claim(
        "framenet_heads_together",
        "headlab",
        "5",
        "does disabling the FrameNet heads together hurt? (against random sets of as many heads)",
        NO_NUMBER,
        "delta of the FrameNet mask per task and mode",
        "contradicted if one is below 0 with p < alpha / m; supported if every lower bound is above "
        "-claims.no_harm_margin",
        "framenet.corpus_dir",
        lambda i: framenet_claim(i.framenet_effect, i.no_harm_margin, i.framenet_missing, i.settings.alpha),
    ),
    Claim(
        "disabling_replicates",
        "headlab",
        "4.6 / Figure 8",
        "do the heads whose disabling helps in one fine-tuning seed help in another?",
        NO_NUMBER,
        "share of the heads that help significantly in seed a (one half of the dev examples) whose score "
        "delta is positive in seed b (the other half), against the share of all heads",
        "supported if every task's interval is above the chance share, contradicted if one is below it",
        "two finetune.seeds (rule importance_summary)",
        lambda i: disabling_replicates_claim(i.replication),
    ),
    Claim(
        "importance_agrees_with_delta",
        "headlab",
        "4.6 (Michel et al. 2019)",
        "does Michel's gradient importance rank heads as the exact disabling sweep does?",
        NO_NUMBER,
        "Spearman correlation over heads of the importance with minus the exact score delta",
        "supported if every task's interval is above claims.agreement_threshold, contradicted if one is "
        "below it",
        "rule importance_summary",
        lambda i: importance_agrees_claim(i.screens, i.agreement_threshold),
    ),
    Claim(
        "prunable_share",
        "headlab",
        "Michel et al. 2019, Sec. 6",
        "how much can be pruned at a cost of at most pruning.max_cost (importance order)?",
        PaperNumber("about 40 % of BERT's heads on MNLI (Michel et al.)", "Michel et al. 2019, Sec. 6.2"),
        "the largest share of heads removed whose every pruning level stays within the allowance",
        "a description",
        "rule importance_summary (pruning curves)",
        lambda i: prunable_share_description(i.prunable),
    ),
)
CLAIM_IDS = tuple(c.claim_id for c in REGISTRY)
