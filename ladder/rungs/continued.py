"""The continued rung: domain-adaptive pretraining. A LoRA adapter learns to predict every next token of the
task's domain text (``data.domain_text``, or the rag corpus's documents) on the one training loop (objective
``next_token``); its dev loss is the zero-shot answer loss on the dev split's targets, as for every trained rung,
so early stopping keeps what helps the task. Evaluated zero-shot; a later lora rung may start from its adapter
(``init``): the domain's text first, then the task's targets."""

from __future__ import annotations

from ladder.errors import LadderError
from ladder.rungs.base import BuildContext, Candidate
from ladder.rungs.finetune import TrainingData, encode_supervised, finetune
from ladder.spec import ContinuedRungSpec, rung_name


def domain_documents(rung: ContinuedRungSpec, ctx: BuildContext) -> list[str]:
    """The texts the rung learns, in their file's order (its ``source``, made explicit when the task loaded)."""
    if rung.source == "corpus":
        if ctx.corpus is None:
            raise LadderError(f"rungs[{rung_name(rung)}]: source 'corpus': the task's corpus was not loaded")
        return [doc.text for doc in ctx.corpus.documents]
    if not ctx.domain_text:
        raise LadderError(f"rungs[{rung_name(rung)}]: source 'domain_text': data.domain_text was not loaded")
    return [doc.text for doc in ctx.domain_text]


def text_blocks(texts: list[str], encode, end: int | None, block: int) -> list[list[int]]:
    """The documents' tokens (each as a whole text, ended by ``end``), joined and cut into blocks of ``block``
    tokens; a last block shorter than two tokens (nothing to predict) is dropped."""
    stream: list[int] = []
    for text in texts:
        stream += encode(text) + ([end] if end is not None else [])
    blocks = [stream[i : i + block] for i in range(0, len(stream), block)]
    return [b for b in blocks if len(b) >= 2]


def build_continued(rung: ContinuedRungSpec, ctx: BuildContext) -> Candidate:
    from ladder.rungs.train import NEXT_TOKEN, TrainExample

    texts = domain_documents(rung, ctx)
    hf = ctx.base_model()
    blocks = text_blocks(texts, hf.encode, hf.eos_token_id, rung.train.max_seq_len)
    if not blocks:
        raise LadderError(f"rungs[{rung_name(rung)}]: the {rung.source} has no text to learn from")
    dev = encode_supervised(rung, ctx, [])  # the zero-shot answer loss on dev's targets
    data = TrainingData(
        [TrainExample(ids, n_prompt=1) for ids in blocks],
        dev.dev,
        {"text": texts, "dev": dev.key["dev"]},
        objective=NEXT_TOKEN,
    )
    return finetune(rung, ctx, data)
