"""The preference rung: DPO (Rafailov et al. 2023) with a supervised term on the chosen answer (RPO, Pang et
al. 2024), on the shared loop as an ``Objective``.

- Pairs: chosen = the target, rejected = the model's own wrong answer on the same train input, made by the
  rung listed before it (``negatives_from``; on-policy negatives, as in SPIN / iterative RPO). For label
  outputs scored by log-likelihood, the rejected answer is the label that rung finds most likely among the
  wrong ones, so every example gives a pair; otherwise an example whose answer the target metric scores 1.0
  gives none. Or the user's pairs (data.preferences; then a seeded tenth of them is the dev set).
- The reference is the starting model (the base, or the ``init`` lora rung's adapter): its log-probabilities
  of both answers are computed once before training, with the same weights the policy starts from, so no
  second copy of the model is kept and a resumed run uses the same reference.
- Loss per pair: -log sigmoid(beta x ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r)))) + sft_weight x the
  chosen answer's mean token loss (without it DPO can lower the chosen answer's likelihood when the two
  answers share most of their tokens). The step's loss is the mean over its pairs.
- Dev evaluations report reward accuracy (pairs whose chosen answer gains more than the rejected), the mean
  reward margin, and the mean log-ratio log pi(c) - log pi(r), beside the dev loss. They are not evidence
  of quality on their own: the task metric, measured by the evaluation, decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from ladder.errors import LadderError
from ladder.record import PairsRecord
from ladder.rungs.base import BuildContext, Candidate, rng_for
from ladder.rungs.finetune import TrainingData, counting_start, finetune, zero_shot
from ladder.spec import PreferenceRungSpec, rung_name


@dataclass
class PreferencePair:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]
    ref_chosen: float = 0.0  # the reference's summed log-probability of the chosen answer
    ref_rejected: float = 0.0


class DPO:
    """Sigmoid DPO + sft_weight x the chosen answer's mean NLL; the weight of a pair is 1 (the step's loss is
    the mean over its pairs)."""

    name = "preference"

    def __init__(self, beta: float, sft_weight: float):
        self.beta, self.sft_weight = beta, sft_weight

    def length(self, pair: PreferencePair, shared: int = 0) -> int:
        return 2 * (len(pair.prompt) - shared + max(len(pair.chosen), len(pair.rejected)))  # two padded rows

    def prompt(self, pair: PreferencePair) -> list[int]:
        return pair.prompt

    def weight(self, pair: PreferencePair) -> int:
        return 1

    def _logps(self, model, pairs: list[PreferencePair], pad_id: int, device):
        """Summed log-probabilities of the chosen answers then the rejected ones, their token counts, and the
        real tokens through the model; the output layer runs only at answer positions."""
        import torch

        from ladder.rungs.train import TrainExample, answer_logits, collate

        rows = [TrainExample(p.prompt + p.chosen, len(p.prompt)) for p in pairs] + [
            TrainExample(p.prompt + p.rejected, len(p.prompt)) for p in pairs
        ]
        ids, mask, labels = collate(rows, pad_id, device)
        logits, targets, where = answer_logits(model, ids, mask, labels)
        token_logps = -torch.nn.functional.cross_entropy(logits, targets, reduction="none")
        sums = torch.zeros(len(rows), dtype=token_logps.dtype, device=token_logps.device)
        sums = sums.index_add(0, where.nonzero()[:, 0], token_logps)
        return sums, where.sum(dim=1), int(mask.sum())

    def prepare(
        self, model, train: list[PreferencePair], dev: list[PreferencePair], pad_id: int, device, batch_size: int = 8
    ) -> dict:
        """The reference: the starting weights' log-probabilities of both answers of every pair. Returns, for
        the record, the reference's mean log-ratio log p(chosen) - log p(rejected) on the dev pairs (what
        training should raise)."""
        import torch

        pairs = train + dev
        model.eval()
        with torch.no_grad():
            for start in range(0, len(pairs), batch_size):
                batch = pairs[start : start + batch_size]
                sums, _, _ = self._logps(model, batch, pad_id, device)
                for pair, chosen, rejected in zip(batch, sums[: len(batch)].tolist(), sums[len(batch) :].tolist()):
                    pair.ref_chosen, pair.ref_rejected = chosen, rejected
        model.train()
        if not dev:
            return {}
        return {"pairs": {"dev_reference_logratio": sum(p.ref_chosen - p.ref_rejected for p in dev) / len(dev)}}

    def loss(self, model, pairs: list[PreferencePair], pad_id: int, device):
        import torch

        from ladder.rungs.train import BatchLoss

        sums, counts, tokens = self._logps(model, pairs, pad_id, device)
        n = len(pairs)
        chosen, rejected = sums[:n], sums[n:]
        ref = torch.tensor([[p.ref_chosen, p.ref_rejected] for p in pairs], dtype=sums.dtype, device=sums.device)
        margin = self.beta * ((chosen - ref[:, 0]) - (rejected - ref[:, 1]))
        per_pair = -torch.nn.functional.logsigmoid(margin)
        if self.sft_weight:
            per_pair = per_pair + self.sft_weight * (-chosen / counts[:n].clamp(min=1))
        stats = {
            "reward_accuracy": float((margin > 0).sum()),
            "reward_margin": float(margin.detach().sum()),
            "chosen_logratio": float((chosen - rejected).detach().sum()),
        }
        return BatchLoss(per_pair.sum(), tokens, int(counts.sum()), stats)


def _encode(hf, formatter, candidate: Candidate, rows, max_len: int) -> tuple[list[PreferencePair], list, int]:
    """(input, chosen, rejected) texts -> token pairs (prompts lose tokens from the left past max_len), the
    rendered texts (the store key) and how many were cut."""
    pairs, texts, cut = [], [], 0
    for text, chosen, rejected in rows:
        messages = candidate.messages(text)
        prompt = formatter.prompt(messages)
        c_text, r_text = formatter.completion(messages, chosen), formatter.completion(messages, rejected)
        p, c, r = hf.encode(prompt), hf.encode_continuation(c_text), hf.encode_continuation(r_text)
        longest = max(len(c), len(r))
        if len(p) + longest > max_len:
            cut += 1
            p = p[-max(1, max_len - longest) :]
            c, r = c[: max_len - 1], r[: max_len - 1]
        pairs.append(PreferencePair(p, c, r))
        texts.append((prompt, c_text, r_text))
    return pairs, texts, cut


def own_mistakes(
    rung: PreferenceRungSpec, ctx: BuildContext, examples
) -> tuple[list[tuple[str, str, str]], int, float]:
    """(input, target, the rung's wrong answer) for each example that has one; how many had none; seconds."""
    from ladder.metrics import scorers

    assert rung.negatives_from is not None  # the spec resolves the default
    outputs = ctx.answers(ctx.candidate(rung.negatives_from), examples)
    scorer = scorers(ctx.spec)[ctx.spec.target.metric]
    rows, skipped = [], 0
    for ex, out in zip(examples, outputs.outputs):
        if out.label_logprobs:  # label scoring: the most likely wrong label
            wrong = [label for label in out.label_logprobs if label not in ex.references]
            rejected = max(wrong, key=lambda label: out.label_logprobs[label]) if wrong else None
        else:
            rejected = out.output if scorer.score(out.output, ex.references) < 1.0 else None
        if rejected is None or rejected == ex.target:
            skipped += 1
            continue
        rows.append((ex.input, ex.target, rejected))
    return rows, skipped, outputs.wall_s + outputs.selection_s


def _judge_options(rung: PreferenceRungSpec, ctx: BuildContext):
    """The judge metric's options with the rung's principles as the rubric (the metric's rubric without them)."""
    from ladder.metrics import scorers

    assert rung.judge is not None  # the spec resolves the default
    options = scorers(ctx.spec)[rung.judge].judge
    assert options is not None
    if not rung.principles:
        return options
    rules = "\n".join(f"- {p}" for p in rung.principles)
    return options.model_copy(update={"rubric": f"Grade the answer by these principles:\n{rules}", "criteria": []})


def judged_pairs(rung: PreferenceRungSpec, ctx: BuildContext, examples, policy: Candidate, options):
    """RLAIF: ``samples`` answers per input from the starting model, graded by the judge (``options``: its metric's,
    the principles as the rubric); (input, best, worst) where the judge separates them by ``margin``. Returns the
    rows, the kept pairs with their scores, how many inputs gave none, the seconds, and per input every (answer,
    score) (for the agreement)."""
    import time

    from ladder.record import JudgedPair

    outputs = ctx.sampled(policy, examples, rung.samples, rung.temperature)
    started = time.perf_counter()
    answers = [out.samples or [out.output] for out in outputs.outputs]
    items = [(ex.input, a, ex.target or None) for ex, mine in zip(examples, answers) for a in mine]
    verdicts = ctx.judged(options, items)
    rows, kept, skipped, graded, at = [], [], 0, [], 0
    for ex, mine in zip(examples, answers):
        scores = [v.score for v in verdicts[at : at + len(mine)]]
        at += len(mine)
        graded.append(list(zip(mine, scores)))
        best = max(range(len(mine)), key=lambda j: (scores[j], -j))
        worst = min(range(len(mine)), key=lambda j: (scores[j], j))
        if scores[best] - scores[worst] < rung.margin or mine[best].strip() == mine[worst].strip():
            skipped += 1
            continue
        rows.append((ex.input, mine[best], mine[worst]))
        kept.append(
            JudgedPair(
                input=ex.input,
                chosen=mine[best],
                rejected=mine[worst],
                chosen_score=scores[best],
                rejected_score=scores[worst],
            )
        )
    seconds = outputs.wall_s + outputs.selection_s + time.perf_counter() - started
    return rows, kept, skipped, seconds, graded


def _judge_vs_metric(ctx: BuildContext, examples, graded):
    """The judge's scores of the dev samples against the target metric's (where the target is not a judge)."""
    from ladder.metrics import scorers
    from ladder.scoring.agreement import agreement

    scorer = scorers(ctx.spec)[ctx.spec.target.metric]
    if scorer.judge is not None or not any(ex.target for ex in examples):
        return None
    judge, metric, lengths = [], [], []
    for ex, mine in zip(examples, graded):
        for answer, score in mine:
            judge.append(score)
            metric.append(scorer.score(answer, ex.references))
            lengths.append(len(answer))
    if len(judge) < 2:
        return None
    return agreement([round(j) for j in judge], judge, [round(m) for m in metric], metric, lengths, ctx.spec.seed)


def build_preference(rung: PreferenceRungSpec, ctx: BuildContext) -> Candidate:
    name = rung_name(rung)
    judged: dict = {}
    if rung.pairs_from == "judge":
        policy = ctx.candidate(rung.init) if rung.init else zero_shot(rung, ctx.spec)
        options = _judge_options(rung, ctx)
        train_rows, kept, skipped, seconds, _ = judged_pairs(rung, ctx, ctx.train, policy, options)
        dev_rows, _, _, dev_seconds, dev_graded = judged_pairs(rung, ctx, ctx.dev, policy, options)
        seconds += dev_seconds
        source = "judge"
        judged = {
            "judge": ctx.judge_identity(options) if ctx.judge_identity else None,
            "principles": list(rung.principles) or [options.rubric],
            "samples": rung.samples,
            "temperature": rung.temperature,
            "margin": rung.margin,
            "chosen_longer": sum(len(p.chosen) > len(p.rejected) for p in kept) / len(kept) if kept else None,
            "judge_vs_metric": _judge_vs_metric(ctx, ctx.dev, dev_graded),
            "judged": kept,
        }
        if not train_rows:
            raise LadderError(
                f"rungs[{name}]: no preference pairs: the judge scored the {rung.samples} answers of every one of "
                f"{len(ctx.train)} train inputs within {rung.margin} of each other (lower `margin`, raise `samples` or "
                "`temperature`)"
            )
    elif ctx.preferences:
        given = sorted(ctx.preferences, key=lambda p: p.id)
        rng_for(ctx.spec.seed, name, "preference-dev").shuffle(given)
        n_dev = max(1, len(given) // 10) if len(given) > 1 else 0
        rows = [(p.input, p.chosen, p.rejected) for p in given]
        train_rows, dev_rows, skipped, seconds, source = rows[n_dev:], rows[:n_dev], 0, 0.0, "data.preferences"
    else:
        train_rows, skipped, seconds = own_mistakes(rung, ctx, ctx.train)
        dev_rows, _, dev_seconds = own_mistakes(rung, ctx, ctx.dev)
        seconds += dev_seconds
        source = str(rung.negatives_from)
    if not train_rows:
        raise LadderError(
            f"rungs[{name}]: no preference pairs: {rung.negatives_from!r} answered all "
            f"{len(ctx.train)} train inputs correctly, so there is no wrong answer to reject"
        )
    hf = ctx.base_model()
    formatter = hf.formatter(ctx.spec.prompt.format)
    candidate = zero_shot(rung, ctx.spec)
    train_pairs, train_texts, cut = _encode(hf, formatter, candidate, train_rows, rung.train.max_seq_len)
    dev_pairs, dev_texts, _ = _encode(hf, formatter, candidate, dev_rows, rung.train.max_seq_len)
    init = ctx.candidate(rung.init).artifact if rung.init else None
    pairs = PairsRecord(
        source=source,
        train_pairs=len(train_pairs),
        dev_pairs=len(dev_pairs),
        skipped=skipped,
        seconds=seconds,
        beta=rung.beta,
        sft_weight=rung.sft_weight,
        init=rung.init,
        **judged,
    )
    data = TrainingData(
        train_pairs,
        dev_pairs,
        {"train": train_texts, "dev": dev_texts},
        objective=DPO(rung.beta, rung.sft_weight),
        truncated=cut,
        data_s=seconds,
        pairs=pairs,
        init_adapter=init.path if init is not None else None,
    )
    candidate = finetune(rung, ctx, data)
    if rung.init is None:
        return candidate
    start = ctx.candidate(rung.init).training
    assert start is not None  # a lora rung (checked at load) trains
    return counting_start(candidate, start)
