"""The tokenizer part of a GGUF: tokens, scores, types, merges, special ids, chat template.

Two families, matching what llama.cpp's tokenizers expect:
- SentencePiece (`tokenizer.model`): GGUF tokenizer model "llama", scores and token types from
  the .model file, user-defined/added tokens from tokenizer_config.json, the space-prefix flag
  from the model's normalizer.
- Byte-level BPE (`tokenizer.json`): GGUF tokenizer model "gpt2" with the merges and a
  pre-tokenizer name llama.cpp knows. An unknown pre-tokenizer is refused up front (llama.cpp's
  own converter fails on it only after reading the weights).
Special ids, add_bos/add_eos and the chat template come from gguf-py's `SpecialVocab`, which
reads tokenizer.json, tokenizer_config.json, chat_template.jinja and config.json.

Which family a folder gets is not guessed from the file names: a folder may hold both files (a
Gemma or Llama 2 model: tokenizer.model, and a tokenizer.json that is SentencePiece-style BPE
which exported as byte-level BPE splits every space off). `choose_vocab` writes each candidate
into a vocabulary-only GGUF, loads it in llama.cpp and keeps the one that splits sample texts
into exactly the ids transformers gives for the folder.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.convert.common import ConvertError

# llama.cpp token types (gguf.TokenType)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

_LLAMA3_DIGITS = "\\p{N}{1,3}"


@dataclass
class Vocab:
    model: str  # "llama" (SentencePiece) or "gpt2" (byte-level BPE)
    pre: str
    tokens: list[bytes]
    scores: list[float] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    merges: list[str] = field(default_factory=list)
    add_space_prefix: bool | None = None

    def add_to_writer(self, writer: Any, source_dir: Path) -> None:
        import gguf

        writer.add_tokenizer_model(self.model)
        writer.add_tokenizer_pre(self.pre)
        writer.add_token_list(self.tokens)
        if self.scores:
            writer.add_token_scores(self.scores)
        writer.add_token_types(self.types)
        if self.add_space_prefix is not None:
            writer.add_add_space_prefix(self.add_space_prefix)
        special = gguf.SpecialVocab(source_dir, load_merges=self.model == "gpt2", n_vocab=len(self.tokens))
        if self.merges and not special.merges:
            special.merges = self.merges
        special.add_to_gguf(writer, quiet=True)


def tokenizer_kind(model_dir: Path) -> str:
    """'spm', 'bpe' or '' - cheap, for pre-flight."""
    if (model_dir / "tokenizer.model").is_file():
        return "spm"
    if (model_dir / "tokenizer.json").is_file():
        return "bpe"
    return ""


def bpe_pre_tokenizer(tokenizer_json: dict[str, Any]) -> str | None:
    """Name llama.cpp uses for this tokenizer.json's pre-tokenizer, or None if it has none.

    Recognised by structure and regex instead of llama.cpp's hash of sample encodings, so a
    tokenizer trained yesterday with a standard pre-tokenizer is still accepted.
    """
    pre = tokenizer_json.get("pre_tokenizer") or {}
    kind = pre.get("type")
    if kind == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    if kind == "Sequence":
        patterns = []
        for item in pre.get("pretokenizers", []):
            if item.get("type") == "Split":
                pattern = item.get("pattern", {})
                patterns.append(pattern.get("Regex") or pattern.get("String") or "")
            elif item.get("type") == "ByteLevel" and item.get("use_regex", False) and not patterns:
                return "gpt-2"
        joined = " ".join(patterns)
        if "(?i:'s|'t|'re|'ve|'m|'ll|'d)" in joined:
            return "llama-bpe" if _LLAMA3_DIGITS in joined else "qwen2"
    return None


@dataclass
class VocabChoice:
    vocab: Vocab
    source: str  # "tokenizer.model (SentencePiece)" / "tokenizer.json (byte-level BPE, pre-tokenizer llama-bpe)"
    match: str  # "7/7": sample texts llama.cpp splits exactly like transformers
    report: str  # one line for the log and the summary


def _candidates(model_dir: Path, n_vocab: int, force: bool) -> list[tuple[str, Vocab | ConvertError]]:
    out: list[tuple[str, Vocab | ConvertError]] = []
    if (model_dir / "tokenizer.model").is_file():
        try:
            out.append(("tokenizer.model (SentencePiece)", _spm_vocab(model_dir, n_vocab)))
        except ConvertError as exc:
            out.append(("tokenizer.model (SentencePiece)", exc))
    if (model_dir / "tokenizer.json").is_file():
        try:
            vocab = _bpe_vocab(model_dir, n_vocab, force=force)
            out.append((f"tokenizer.json (byte-level BPE, pre-tokenizer {vocab.pre})", vocab))
        except ConvertError as exc:
            out.append(("tokenizer.json (byte-level BPE)", exc))
    return out


def _llama_ids(probe: Path, samples: tuple[str, ...], add_bos: list[bool]) -> list[list[int]]:
    from engine.convert.verify import open_vocab

    model = open_vocab(probe)
    try:
        return [model.tokenize(t.encode("utf-8"), bos, False) for t, bos in zip(samples, add_bos, strict=True)]
    finally:
        model.close()


def _live_pre_tokenizer(hf_tok: Any) -> str | None:
    """llama.cpp's name for the pre-tokenizer a loaded fast tokenizer really uses."""
    backend = getattr(hf_tok, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    if pre is None:
        return None
    try:
        return bpe_pre_tokenizer({"pre_tokenizer": json.loads(pre.__getstate__())})
    except (TypeError, ValueError, AttributeError):
        return None


def choose_vocab(model_dir: Path, n_vocab: int, write_probe: Any, *, force: bool = False) -> VocabChoice:
    """The tokenizer file whose GGUF vocabulary reproduces transformers' token ids in llama.cpp.

    `write_probe(vocab, path)` writes a GGUF with the model's metadata and `vocab` but no
    tensors (hf_to_gguf owns the metadata). Refuses when no candidate matches every sample,
    unless `force` (then the closest is kept, and verification reports the difference)."""
    import tempfile

    from engine.convert.verify import TOKENIZER_SAMPLES, load_hf_tokenizer

    candidates = _candidates(model_dir, n_vocab, force)
    if not candidates:
        raise ConvertError(
            f"{model_dir} has no tokenizer (tokenizer.model or tokenizer.json); "
            "copy the base model's tokenizer files into it"
        )
    usable = [(label, v) for label, v in candidates if isinstance(v, Vocab)]
    if not usable:
        raise next(v for _label, v in candidates if isinstance(v, ConvertError))
    try:
        hf_tok = load_hf_tokenizer(model_dir)
    except (OSError, ValueError) as exc:
        raise ConvertError(f"{model_dir}: transformers cannot load its tokenizer ({str(exc)[:160]})") from None
    live = _live_pre_tokenizer(hf_tok)
    for label, vocab in list(usable):
        # transformers may load a folder with its model class's own pre-tokenizer instead of the
        # file's (a qwen2 model gets Qwen2's digit splitting): try that one too
        if vocab.model == "gpt2" and live and live != vocab.pre:
            usable.append((f"tokenizer.json (byte-level BPE, pre-tokenizer {live}, as transformers loads it)",
                           dataclasses.replace(vocab, pre=live)))
    want = [list(hf_tok(t).input_ids) for t in TOKENIZER_SAMPLES]
    add_bos = [bool(ids) and ids[0] == hf_tok.bos_token_id for ids in want]
    tried: list[tuple[int, str, Vocab, str]] = []
    with tempfile.TemporaryDirectory(prefix="llmdeck-vocab-") as scratch:
        for i, (label, vocab) in enumerate(usable):
            probe = Path(scratch) / f"probe-{i}.gguf"
            write_probe(vocab, probe)
            try:
                got = _llama_ids(probe, TOKENIZER_SAMPLES, add_bos)
            except ConvertError as exc:
                tried.append((-1, label, vocab, str(exc)))
                continue
            same = sum(a == b for a, b in zip(want, got))
            example = next(
                (f"{t[:30]!r} -> transformers {a[:10]}, llama.cpp {b[:10]}"
                 for t, a, b in zip(TOKENIZER_SAMPLES, want, got) if a != b),
                "",
            )
            tried.append((same, label, vocab, example))
            if same == len(TOKENIZER_SAMPLES):
                break
    total = len(TOKENIZER_SAMPLES)
    best = max(tried, key=lambda t: t[0])
    if best[0] == total:
        return VocabChoice(best[2], best[1], f"{total}/{total}",
                           f"tokenizer: {best[1]}; llama.cpp splits all {total} sample texts exactly like transformers")
    lines = "; ".join(
        f"{label}: {f'{same}/{total} identical' if same >= 0 else 'cannot load'}{f' ({why})' if why else ''}"
        for same, label, _v, why in tried
    )
    if not force:
        raise ConvertError(
            f"{model_dir}: no tokenizer file gives llama.cpp the token ids transformers uses ({lines}). "
            "Copy the base model's tokenizer files (tokenizer.model above all) into the folder; "
            "--force writes the closest one, and verification will then fail on the tokenizer"
        )
    return VocabChoice(best[2], best[1], f"{max(0, best[0])}/{total}",
                       f"tokenizer: {best[1]} (closest, --force): {lines}")


def load_vocab(model_dir: Path, n_vocab: int, *, force: bool = False) -> Vocab:
    kind = tokenizer_kind(model_dir)
    if kind == "spm":
        return _spm_vocab(model_dir, n_vocab)
    if kind == "bpe":
        return _bpe_vocab(model_dir, n_vocab, force=force)
    raise ConvertError(f"{model_dir} has no tokenizer (tokenizer.model or tokenizer.json); copy the base model's tokenizer files into it")


def _added_tokens(model_dir: Path) -> dict[int, dict[str, Any]]:
    path = model_dir / "tokenizer_config.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConvertError(f"{path} is not valid JSON ({exc})") from None
    return {int(k): v for k, v in (data.get("added_tokens_decoder") or {}).items()}


def _spm_vocab(model_dir: Path, n_vocab: int) -> Vocab:
    from sentencepiece import SentencePieceProcessor
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    path = model_dir / "tokenizer.model"
    proc = SentencePieceProcessor()
    try:
        proc.LoadFromFile(str(path))
    except (OSError, RuntimeError) as exc:
        raise ConvertError(f"{path} is not a SentencePiece model ({exc})") from None
    proto = model_pb2.ModelProto()
    proto.ParseFromString(path.read_bytes())
    size = n_vocab or proc.vocab_size()
    tokens = [f"[PAD{i}]".encode() for i in range(size)]
    scores = [-10000.0] * size
    types = [UNUSED] * size
    for i in range(min(size, proc.vocab_size())):
        tokens[i] = proc.IdToPiece(i).encode("utf-8")
        scores[i] = proc.GetScore(i)
        types[i] = UNKNOWN if proc.IsUnknown(i) else CONTROL if proc.IsControl(i) else UNUSED if proc.IsUnused(i) else BYTE if proc.IsByte(i) else NORMAL
        if types[i] == NORMAL and proto.pieces[i].type == model_pb2.ModelProto.SentencePiece.USER_DEFINED:
            # matched as a whole in the raw text (Gemma's runs of spaces, tabs, HTML tags), with
            # real spaces, as llama.cpp's own converter writes the tokenizer's added tokens;
            # as NORMAL pieces with their -1000 scores llama.cpp would never merge them
            types[i] = USER_DEFINED
            tokens[i] = tokens[i].replace("\u2581".encode(), b" ")
    added_json = model_dir / "added_tokens.json"
    if added_json.is_file():
        for text, tid in json.loads(added_json.read_text(encoding="utf-8")).items():
            if int(tid) < size:
                tokens[int(tid)], scores[int(tid)], types[int(tid)] = text.encode(), -1000.0, USER_DEFINED
    for tid, data in _added_tokens(model_dir).items():
        if tid >= size:
            continue
        text = str(data.get("content", "")).encode("utf-8")
        if data.get("special") or (text.startswith(b"<") and text.endswith(b">")):
            types[tid] = CONTROL
        else:
            text = text.replace("\u2581".encode(), b" ")
            types[tid] = USER_DEFINED
            scores[tid] = -1000.0
        tokens[tid] = text
    return Vocab(
        model="llama",
        pre="default",
        tokens=tokens,
        scores=scores,
        types=types,
        add_space_prefix=bool(proto.normalizer_spec.add_dummy_prefix),
    )


def _bpe_vocab(model_dir: Path, n_vocab: int, *, force: bool) -> Vocab:
    path = model_dir / "tokenizer.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConvertError(f"{path} is not valid JSON ({exc})") from None
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise ConvertError(
            f"{path} is a {model.get('type')} tokenizer; GGUF export supports byte-level BPE tokenizer.json "
            "or a SentencePiece tokenizer.model"
        )
    pre = bpe_pre_tokenizer(data)
    if pre is None:
        if not force:
            raise ConvertError(
                f"{path}: its pre-tokenizer ({json.dumps(data.get('pre_tokenizer'))[:80]}) is not one llama.cpp knows "
                "(byte-level GPT-2, Llama 3, Qwen2); --force writes it as 'default', which may tokenize differently"
            )
        pre = "default"
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    added = {int(t["id"]): t for t in data.get("added_tokens") or []}
    for tid, tok in added.items():
        vocab[str(tok["content"])] = tid
    size = n_vocab or (max(vocab.values()) + 1)
    reverse = {tid: text for text, tid in vocab.items()}
    tokens: list[bytes] = []
    types: list[int] = []
    for i in range(size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]".encode())
            types.append(UNUSED)
        elif i in added:
            tokens.append(reverse[i].encode("utf-8"))
            types.append(CONTROL if added[i].get("special") else USER_DEFINED)
        else:
            tokens.append(reverse[i].encode("utf-8"))
            types.append(NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    return Vocab(model="gpt2", pre=pre, tokens=tokens, types=types, merges=merges)
