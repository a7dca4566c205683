"""Three tiny fast tokenizers, one per encoder family, built with the `tokenizers` library (nothing
is downloaded), and a tiny random RoBERTa for the byte-level BPE one.

* `wordpiece_tokenizer`: BERT-style WordPiece, ``[CLS] A [SEP] B [SEP]`` with token type ids
  0 ... 0 1 ... 1;
* `bpe_tokenizer`: RoBERTa-style byte-level BPE (``Ġ`` marks a leading space), ``<s> A </s></s> B
  </s>``, trimmed offsets, no token types (zeros);
* `unigram_tokenizer`: XLM-R-style SentencePiece Unigram (``▁`` marks a leading space),
  ``<s> A </s></s> B </s>``, untrimmed offsets (``▁,`` covers " ,"), no token types.

Each keeps "," "." "!" after a space as one piece (``,`` / ``Ġ,`` / ``▁,``).
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaModel

WORDS = ["the", "a", "cat", "dog", "sat", "ran"]
PUNCTUATION = [",", ".", "!"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..4


def wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate([*specials, *WORDS, *PUNCTUATION, "##s"])}
    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        mask_token="[MASK]",
    )


def _roberta_style(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


def bpe_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE: every byte is a piece; merges make the words and ``Ġ,`` ``Ġ.`` ``Ġ!``."""
    merges = [("Ġ", ","), ("Ġ", "."), ("Ġ", "!")]
    for word in WORDS:
        merges += [(word[:i], word[i]) for i in range(1, len(word))] + [("Ġ", word)]
    merges = list(dict.fromkeys(merges))
    vocab = {token: i for i, token in enumerate(ROBERTA_SPECIALS)}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(char, len(vocab))
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]), trim_offsets=True, add_prefix_space=False
    )
    return _roberta_style(tokenizer)


def unigram_tokenizer() -> PreTrainedTokenizerFast:
    """SentencePiece Unigram: ``▁word`` and ``▁,`` pieces score above their spellings."""
    pieces = [(token, 0.0) for token in ROBERTA_SPECIALS]
    pieces += [("▁" + token, -2.0) for token in WORDS + PUNCTUATION]
    pieces += [(token, -3.0) for token in ["▁", *PUNCTUATION]]
    pieces += [(char, -5.0) for char in "abcdefghijklmnopqrstuvwxyz"]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=ROBERTA_SPECIALS.index("<unk>"), byte_fallback=False))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    return _roberta_style(tokenizer)


def tiny_roberta(vocab_size: int, seed: int = 0) -> RobertaModel:
    """A random RoBERTa: 2 layers x 4 heads, hidden 32, eager attention, RoBERTa's special ids."""
    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=66,  # positions start after the padding id (1)
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        initializer_range=0.3,  # peaked attention, as tests/tiny.py
        attn_implementation="eager",
    )
    return RobertaModel(config, add_pooling_layer=False).eval()
