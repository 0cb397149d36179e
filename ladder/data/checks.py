"""Data checks: what is wrong with a task's data before anything is trained (``ladder check-data``).

The cheap checks (no model) run before every assessment: duplicates, the same input with conflicting
targets, exact and near-duplicate leakage into test (MinHash LSH over word pairs, confirmed by the exact
Jaccard similarity), shared long n-grams, label balance and length outliers. Conflicts and leakage are
errors unless the spec allows them. Two checks need the model's tokenizer or its label probabilities and
are computed by the caller: examples a trained rung's ``max_seq_len`` would truncate, and suspected label
errors by confident learning (``cleanlab``) on out-of-sample class probabilities.

Imports no model code.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import TYPE_CHECKING

from ladder.data.near import NOT_INSTALLED, jaccard, near_pairs
from ladder.data.near import available as near_available
from ladder.data.report import DataCheck, DataFinding, DataReport, Severity, not_checked
from ladder.text import normalize, squad_tokens

if TYPE_CHECKING:
    from ladder.data.splits import Example
    from ladder.spec import TaskSpec

SPLITS = ("train", "dev", "test")

KEEP = 50  # findings kept per check (the count says how many there were)

NGRAM = 8  # words: a test input sharing this long a run of words with a train/dev input is reported

NEAR_TARGET_JACCARD = 0.8  # targets this close (over words) count as the same answer

REVIEW_JACCARD = 0.5  # near pairs at or above this are shown for review; the spec's threshold makes them errors


def ref(ex: Example) -> str:
    return f"{ex.split}/{ex.id}"


def check(
    name: str,
    title: str,
    findings: list[DataFinding],
    summary: str,
    severity: Severity | None = None,
    count: int | None = None,
    allowed_by: str | None = None,
) -> DataCheck:
    count = len(findings) if count is None else count
    severity = severity or ("warning" if count else "ok")
    return DataCheck(
        name=name,
        title=title,
        severity=severity if count else "ok",
        count=count,
        summary=summary,
        findings=findings[:KEEP],
        allowed_by=allowed_by,
    )


def _same_input(examples: list[Example]) -> dict[str, list[Example]]:
    groups: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        groups[normalize(ex.input)].append(ex)
    return groups


def _duplicates(groups: dict[str, list[Example]]) -> DataCheck:
    """The same input twice within train and dev, or twice within test (a test copy of a train or dev input
    is leakage, reported there)."""
    findings = []
    for members in groups.values():
        for side in ([ex for ex in members if ex.split != "test"], [ex for ex in members if ex.split == "test"]):
            if len(side) < 2 or not _targets_agree(side):
                continue  # one copy, or copies that disagree (conflicts, reported there)
            exact = len({ex.input for ex in side}) == 1
            where = sorted({ex.split for ex in side}, key=SPLITS.index)
            findings.append(
                DataFinding(
                    examples=[ref(ex) for ex in side],
                    where=side[0].source,
                    detail=f"{len(side)} copies ({'identical' if exact else 'equal after normalization'}) in "
                    f"{' and '.join(where)}: {side[0].input[:80]!r}",
                )
            )
    copies = sum(len(f.examples) - 1 for f in findings)
    return check(
        "duplicates",
        "Duplicate inputs",
        findings,
        f"{len(findings)} inputs appear more than once within train and dev or within test ({copies} extra "
        "copies): they weigh twice in training and in the estimates"
        if findings
        else "no input appears twice",
    )


def _targets_agree(members: list[Example]) -> bool:
    """One answer fits all: some reference of each example is a reference of every other."""
    common = set.intersection(*({normalize(r) for r in ex.references} for ex in members))
    return bool(common)


def _conflicts(groups: dict[str, list[Example]], allowed: bool) -> DataCheck:
    findings = []
    for members in groups.values():
        if len(members) > 1 and not _targets_agree(members):
            targets = ", ".join(f"{ref(ex)} says {ex.target[:40]!r}" for ex in members[:4])
            findings.append(
                DataFinding(
                    examples=[ref(ex) for ex in members],
                    where=members[0].source,
                    detail=f"the same input, different targets: {targets}",
                )
            )
    summary = (
        f"{len(findings)} inputs have conflicting targets: the task cannot be scored consistently on them"
        if findings
        else "no input has two different targets"
    )
    return check(
        "conflicts",
        "Conflicting targets",
        findings,
        summary,
        severity="warning" if allowed else "error",
        allowed_by="data.allow_conflicting_targets" if allowed else None,
    )


def _leakage(groups: dict[str, list[Example]], allowed: bool) -> DataCheck:
    findings = []
    for members in groups.values():
        seen = [ex for ex in members if ex.split != "test"]
        for ex in members:
            if ex.split == "test" and seen:
                findings.append(
                    DataFinding(
                        examples=[ref(ex), ref(seen[0])],
                        where=ex.source,
                        detail=f"leakage: test input also appears at {seen[0].source}",
                        score=1.0,
                    )
                )
    summary = (
        f"{len(findings)} test inputs also appear in train or dev (after normalization)"
        if findings
        else "no test input appears in train or dev"
    )
    return check(
        "leakage",
        "Test inputs seen in train or dev",
        findings,
        summary,
        severity="warning" if allowed else "error",
        allowed_by="data.allow_duplicate_inputs" if allowed else None,
    )


def _targets_near(a: Example, b: Example) -> bool:
    """Equal targets after normalization (some reference shared), or near-equal ones: Jaccard >= 0.8 over words."""
    if _targets_agree([a, b]):
        return True
    words_a, words_b = set(squad_tokens(a.target)), set(squad_tokens(b.target))
    return bool(words_a | words_b) and jaccard(words_a, words_b) >= NEAR_TARGET_JACCARD


def _near_leakage(
    splits: dict[str, list[Example]], threshold: float, allowed: bool, seed: int
) -> tuple[DataCheck, DataCheck]:
    """Test inputs near a train or dev input: with the same (or nearly the same) target a leaked answer, an error;
    with another target a contrastive pair (templated inputs that differ in the word that matters), a warning."""
    pool = splits["train"] + splits["dev"]
    texts = [ex.input for ex in pool] + [ex.input for ex in splits["test"]]
    n_pool = len(pool)
    pairs = near_pairs(texts, min(threshold, REVIEW_JACCARD), seed, pairs_of=lambda a, b: a < n_pool <= b)
    best: dict[tuple[int, bool], tuple[int, float]] = {}  # (test row, same target) -> closest pool row
    for a, b, similarity in pairs:
        if normalize(texts[a]) == normalize(texts[b]):
            continue  # exact leakage, reported there
        key = (b, _targets_near(pool[a], splits["test"][b - n_pool]))
        if key not in best or similarity > best[key][1]:
            best[key] = (a, similarity)
    leaked_findings: list[DataFinding] = []
    contrastive: list[DataFinding] = []
    for (b, same), (a, similarity) in sorted(best.items(), key=lambda kv: -kv[1][1]):
        if not same and ((b, True) in best or similarity < threshold):
            continue  # a leaked answer is reported for it; or another answer below the threshold: nothing to review
        test_ex, seen = splits["test"][b - n_pool], pool[a]
        flag = "" if similarity >= threshold else " (below the threshold: shown for review)"
        answers = "" if same else f"; targets differ ({test_ex.target[:30]!r} vs {seen.target[:30]!r})"
        (leaked_findings if same else contrastive).append(
            DataFinding(
                examples=[ref(test_ex), ref(seen)],
                where=test_ex.source,
                score=round(similarity, 3),
                detail=f"near-duplicate of {seen.source} (Jaccard {similarity:.2f} over word pairs){flag}{answers}: "
                f"{test_ex.input[:60]!r} ~ {seen.input[:60]!r}",
            )
        )
    count = sum(1 for f in leaked_findings if (f.score or 0) >= threshold)
    summary = (
        f"{count} test inputs are near-duplicates (Jaccard >= {threshold}) of a train or dev input with the same target"
        if count
        else f"no test input is a near-duplicate (Jaccard >= {threshold}) of a train or dev input with the same target"
    )
    if len(leaked_findings) > count:
        summary += f"; the {len(leaked_findings) - count} closest pairs below it are listed for review"
    leak = check(
        "near_leakage",
        "Near-duplicate leakage into test",
        leaked_findings,
        summary,
        count=count,
        severity="warning" if allowed else "error",
        allowed_by="data.allow_duplicate_inputs" if allowed else None,
    )
    summary = (
        f"{len(contrastive)} test inputs are near-duplicates (Jaccard >= {threshold}) of a train or dev input "
        "whose target differs: contrastive pairs, not leaked answers (they test the words that differ)"
        if contrastive
        else "no near-duplicate test input has a different target"
    )
    return leak, check("near_contrastive", "Near-duplicates with other targets", contrastive, summary)


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = squad_tokens(text)
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _ngram_overlap(splits: dict[str, list[Example]], flagged: set[str]) -> DataCheck:
    index: dict[tuple[str, ...], Example] = {}
    for ex in splits["train"] + splits["dev"]:
        for gram in _ngrams(ex.input, NGRAM):
            index.setdefault(gram, ex)
    findings = []
    for ex in splits["test"]:
        if ref(ex) in flagged:
            continue
        grams = _ngrams(ex.input, NGRAM)
        hits = [g for g in grams if g in index]
        if hits:
            other = index[hits[0]]
            findings.append(
                DataFinding(
                    examples=[ref(ex), ref(other)],
                    where=ex.source,
                    score=round(len(hits) / len(grams), 3),
                    detail=f"shares {len(hits)} of its {len(grams)} {NGRAM}-word runs with train/dev (e.g. {other.source}): "
                    f"{' '.join(hits[0])!r}",
                )
            )
    findings.sort(key=lambda f: -(f.score or 0))
    summary = (
        f"{len(findings)} more test inputs share a run of {NGRAM} words with a train or dev input "
        "(quoted passages, templates): worth a look"
        if findings
        else f"no test input shares {NGRAM} words in a row with train or dev"
    )
    return check("ngram_overlap", f"Shared {NGRAM}-word runs with test", findings, summary, severity="info")


def _label_balance(splits: dict[str, list[Example]], labels: list[str]) -> tuple[DataCheck, dict[str, dict[str, int]]]:
    counts = {s: {label: 0 for label in labels} for s in SPLITS}
    for split in SPLITS:
        for ex in splits[split]:
            if ex.target in counts[split]:
                counts[split][ex.target] += 1
    findings = []
    for label in labels:
        if counts["train"][label] == 0:
            where = [s for s in ("dev", "test") if counts[s][label]]
            findings.append(
                DataFinding(
                    examples=[],
                    detail=f"label {label!r} has no train example"
                    + (f" but appears in {' and '.join(where)}" if where else ""),
                )
            )
    train = counts["train"]
    n = sum(train.values()) or 1
    top, low = max(train, key=lambda label: train[label]), min(train, key=lambda label: train[label])
    summary = (
        f"train: {len(labels)} labels, the largest {top!r} {train[top] / n:.0%}, the smallest {low!r} "
        f"{train[low] / n:.0%}"
    )
    if findings:
        summary = f"{len(findings)} labels have no train example (no demonstration, nothing to learn); " + summary
    check = DataCheck(
        name="label_balance",
        title="Label balance",
        severity="warning" if findings else "info",
        count=len(findings),
        summary=summary,
        findings=findings[:KEEP],
    )
    return check, counts


def _length_outliers(examples: list[Example]) -> DataCheck:
    """Inputs far longer than the rest (over Q3 + 3 IQR words): pasted documents, concatenated rows."""
    lengths = [len(ex.input.split()) for ex in examples]
    if len(lengths) < 8:
        return check("length_outliers", "Length outliers", [], "too few examples to say")
    q1, _, q3 = statistics.quantiles(lengths, n=4)
    limit = q3 + 3 * max(q3 - q1, 1)
    findings = [
        DataFinding(
            examples=[ref(ex)],
            where=ex.source,
            score=float(n),
            detail=f"{n} words (median {statistics.median(lengths):g}, limit {limit:g})",
        )
        for ex, n in zip(examples, lengths)
        if n > limit
    ]
    findings.sort(key=lambda f: -(f.score or 0))
    summary = (
        f"{len(findings)} inputs are over {limit:g} words (Q3 + 3 IQR; median {statistics.median(lengths):g})"
        if findings
        else f"no input is over {limit:g} words (Q3 + 3 IQR)"
    )
    return check("length_outliers", "Length outliers", findings, summary, severity="info")


def cheap_checks(spec: TaskSpec, splits: dict[str, list[Example]]) -> DataReport:
    """Every check that needs no model, over all three splits."""
    data = spec.data
    everything = [ex for s in SPLITS for ex in splits[s]]
    groups = _same_input(everything)
    leakage = _leakage(groups, data.allow_duplicate_inputs)
    if near_available():
        near, contrastive = _near_leakage(splits, data.near_duplicate_jaccard, data.allow_duplicate_inputs, spec.seed)
    else:  # a core install
        near = not_checked("near_leakage", "Near-duplicate leakage into test", NOT_INSTALLED)
        contrastive = not_checked("near_contrastive", "Near-duplicates with other targets", NOT_INSTALLED)
    flagged = {
        f.examples[0]
        for f in leakage.findings + near.findings + contrastive.findings
        if (f.score or 0) >= data.near_duplicate_jaccard
    }
    checks = [
        _duplicates(groups),
        _conflicts(groups, data.allow_conflicting_targets),
        leakage,
        near,
        contrastive,
        _ngram_overlap(splits, flagged),
    ]
    balance = None
    if spec.output.kind == "label" and spec.output.labels:
        check, balance = _label_balance(splits, spec.output.labels)
        checks.append(check)
    checks.append(_length_outliers(everything))
    return DataReport(checks=checks, label_balance=balance)


def problems_and_warnings(report: DataReport) -> tuple[list[str], list[str]]:
    """Errors (conflicts, leakage) as ``file:line: message`` lines, and the rest as one-line warnings."""
    problems, warnings = [], []
    for check in report.checks:
        if check.severity == "error":
            hint = {
                "conflicts": "set data.allow_conflicting_targets: true if legitimate",
                "leakage": "set data.allow_duplicate_inputs: true if legitimate",
                "near_leakage": "set data.allow_duplicate_inputs: true if legitimate, or raise data.near_duplicate_jaccard",
            }
            for f in check.findings[: check.count]:  # near pairs below the threshold come last, for review only
                problems.append(f"{f.where}: {f.detail} ({hint[check.name]})")
            if check.count > len(check.findings):
                problems.append(
                    f"... and {check.count - len(check.findings)} more {check.name} findings (ladder check-data)"
                )
        elif check.severity == "warning":
            if check.allowed_by and check.name == "leakage":
                warnings += [f"{f.where}: {f.detail} (allowed by {check.allowed_by})" for f in check.findings]
            else:
                warnings.append(
                    f"data check {check.name}: {check.summary}"
                    + (f" (allowed by {check.allowed_by})" if check.allowed_by else "")
                    + " (details: ladder check-data)"
                )
    return problems, warnings


# --- checks that need the model's tokenizer or probabilities (computed by the caller) ----------------
