"""Tiny, randomly initialised causal LMs with a word-level tokenizer trained on a task's own corpus.

A tiny model is a stand-in for a real LM wherever speed matters more than knowledge: unit tests, smoke runs
and RL experiments that must learn from scratch within a few CPU minutes. Its vocabulary holds exactly the
corpus' words, so every word is one action and the action space stays a few dozen tokens wide.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from textgym.models.bundle import ModelBundle

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN = "<pad>", "<unk>", "<s>", "</s>"
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

# SentencePiece marks word starts with this character in place of a space.
_WORD_START = "\u2581"

_cache: dict[tuple, ModelBundle] = {}  # (corpus digest, seed, sizes..., [device]) -> bundle
_lock = threading.Lock()


def tiny_model(
    corpus: Sequence[str],
    *,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 256,
    device: str | torch.device = "cpu",
) -> ModelBundle:
    """Build a small Llama-architecture causal LM over a word-level vocabulary trained on ``corpus``.

    The tokenizer maps every whitespace-separated word of ``corpus`` to one token and back, so
    ``tokenizer.decode(tokenizer(line).input_ids, skip_special_tokens=True) == line`` for every line. Words
    not in the corpus encode as ``<unk>``. Special ids: ``<pad>`` 0, ``<unk>`` 1, ``<s>`` 2, ``</s>`` 3.
    Encoding prepends ``<s>`` (as Llama tokenizers do, giving the first real token a fixed context) and
    never appends ``</s>``. The tokenizer has no chat template and pads on the right unless told otherwise
    per call (``padding_side="left"``).

    The model's weights are drawn from ``seed`` without touching the global RNG state; the same arguments
    build bit-identical weights and tokenizer in any process. The result is memoised on the corpus content
    and every argument, and comes frozen (eval mode, no parameter requiring grad) in float32 on the CPU,
    like :func:`textgym.models.load_model`'s.

    Args:
        corpus: Lines of text, each words separated by single spaces, without leading or trailing
            whitespace, e.g. ``["Repeat exactly: a b c d", ...]``. Duplicates are fine.
        seed: Seeds the weight initialisation.
        hidden_size: Width of the residual stream; must be a multiple of ``2 * num_heads``.
        num_layers: Number of transformer blocks.
        num_heads: Number of attention heads.
        max_positions: Longest sequence (prompt plus completion) the model supports.
        device: Where the model lives. Weights are always drawn on the CPU and then moved, so every
            device holds the same weights.

    Returns:
        The shared, frozen bundle.

    Raises:
        TypeError: if ``corpus`` is a single string rather than a sequence of lines.
        ValueError: if a line has irregular whitespace or the corpus has no words, or if a size argument is
            invalid.
    """
    lines = _validate_corpus(corpus)
    _validate_sizes(
        hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, max_positions=max_positions
    )
    digest = hashlib.sha256(json.dumps(lines).encode()).hexdigest()
    device = torch.device(device)
    if device.type != "cpu":
        key = (digest, seed, hidden_size, num_layers, num_heads, max_positions, str(device))
        if key not in _cache:
            cpu = tiny_model(
                lines,
                seed=seed,
                hidden_size=hidden_size,
                num_layers=num_layers,
                num_heads=num_heads,
                max_positions=max_positions,
            )
            moved = copy.deepcopy(cpu.model).to(device)
            with _lock:
                _cache.setdefault(key, ModelBundle(model=moved, tokenizer=cpu.tokenizer, name=cpu.name))
        return _cache[key]
    key = (digest, seed, hidden_size, num_layers, num_heads, max_positions)
    with _lock:
        bundle = _cache.get(key)
        if bundle is None:
            tokenizer = _build_tokenizer(lines, max_positions=max_positions)
            model = _build_model(
                vocab_size=len(tokenizer),
                seed=seed,
                hidden_size=hidden_size,
                num_layers=num_layers,
                num_heads=num_heads,
                max_positions=max_positions,
            )
            name = f"tiny-{digest[:12]}-seed{seed}-h{hidden_size}-l{num_layers}-a{num_heads}-p{max_positions}"
            bundle = ModelBundle(model=model, tokenizer=tokenizer, name=name)
            _cache[key] = bundle
    return bundle


def clear_tiny_model_cache() -> None:
    """Forget every memoised tiny model (also done by :func:`textgym.models.clear_model_cache`)."""
    with _lock:
        _cache.clear()


def _validate_corpus(corpus: Sequence[str]) -> list[str]:
    if isinstance(corpus, str | bytes):
        raise TypeError("corpus must be a sequence of lines, not a single string")
    lines = list(corpus)
    for line in lines:
        if not isinstance(line, str):
            raise TypeError(f"corpus lines must be strings, got {type(line).__name__}: {line!r}")
        # Anything but single spaces between words could not survive the word-level round trip.
        if line != " ".join(line.split()):
            raise ValueError(
                f"corpus line {line!r} has leading, trailing, repeated or non-space whitespace; tiny models "
                "tokenize words separated by single spaces"
            )
    if not any(lines):
        raise ValueError("corpus has no words to build a vocabulary from")
    return lines


def _validate_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    # Rotary embeddings rotate pairs of dimensions, so each head needs an even width.
    hidden_size, num_heads = sizes["hidden_size"], sizes["num_heads"]
    if hidden_size % (2 * num_heads) != 0:
        raise ValueError(f"hidden_size ({hidden_size}) must be a multiple of 2 * num_heads ({2 * num_heads})")


def _build_tokenizer(lines: list[str], *, max_positions: int) -> PreTrainedTokenizerFast:
    """Train a SentencePiece word model on ``lines`` and wrap it as a fast transformers tokenizer.

    transformers' SentencePiece converters handle only the unigram and BPE model types, but a word model
    is exactly a word-level lookup after splitting on spaces, which the ``tokenizers`` library expresses
    directly (``WordLevel`` behind a ``Metaspace`` pre-tokenizer). SentencePiece still decides the
    vocabulary and its (frequency) order.
    """
    # Deferred, like the transformers imports below: `import textgym.models` should stay cheap for code
    # that only needs ModelBundle.
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = sorted({word for line in lines for word in line.split()})
    model_file = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model_file,
        model_type="word",
        # The word model can only keep words it saw; a higher limit just means "all of them".
        vocab_size=len(words) + 4,
        hard_vocab_limit=False,
        use_all_vocab=True,
        # Keep every word verbatim: no Unicode normalisation, no splitting on digits or script changes.
        normalization_rule_name="identity",
        character_coverage=1.0,
        split_by_number=False,
        split_by_unicode_script=False,
        max_sentencepiece_length=max(16, max(len(word) for word in words) + 1),
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        pad_piece=PAD_TOKEN,
        unk_piece=UNK_TOKEN,
        bos_piece=BOS_TOKEN,
        eos_piece=EOS_TOKEN,
        num_threads=1,
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_proto=model_file.getvalue())
    vocab = {processor.id_to_piece(index): index for index in range(processor.get_piece_size())}

    backend = Tokenizer(WordLevel(vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_WORD_START, prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement=_WORD_START, prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A",
        pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B",
        special_tokens=[(BOS_TOKEN, BOS_ID)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        model_max_length=max_positions,
        clean_up_tokenization_spaces=False,
    )
    _check_round_trip(tokenizer, lines)
    return tokenizer


def _check_round_trip(tokenizer: PreTrainedTokenizerFast, lines: list[str]) -> None:
    # Words that collide with tokenizer syntax (e.g. "<s>" or "\u2581") would silently break the
    # one-word-one-token promise; fail loudly instead.
    distinct = sorted(set(lines))
    for line, ids in zip(distinct, tokenizer(distinct).input_ids, strict=True):
        body = ids[1:]
        if len(body) != len(line.split()) or UNK_ID in body or tokenizer.decode(body) != line:
            raise ValueError(f"corpus line {line!r} cannot be tokenized one token per word")


def _build_model(
    *, vocab_size: int, seed: int, hidden_size: int, num_layers: int, num_heads: int, max_positions: int
) -> LlamaForCausalLM:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
    )
    # Module initialisers draw from the global generator; forking keeps the caller's RNG stream intact.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.to(torch.float32)
    model.eval()
    model.requires_grad_(False)
    return model
