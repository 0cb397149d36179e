"""The light text side of a model folder (``backends/hf/tokens.py``: tokenizers + jinja2, no transformers, no torch)
against transformers' own tokenizer: the same ids, the same BOS rule, the same rendered chat. The unit tests run on a
tokenizer built here; the ``model`` ones on both bundled models over every shipped task's text."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest
from conftest import ROOT

from ladder.backends.hf.tokens import FolderTokenizer, compile_template


def _tiny_folder(tmp_path: Path, **config) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tmp_path.mkdir(parents=True, exist_ok=True)
    vocab = {"[UNK]": 0, "<s>": 1, "</s>": 2, "hello": 3, "world": 4}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>", **config}))
    return tmp_path


def test_a_folder_is_read_light_only_where_nothing_changes_its_encoding(tmp_path):
    folder = FolderTokenizer.open(_tiny_folder(tmp_path / "a"))
    assert folder is not None and folder.encode("hello world") == [3, 4] and folder.encode("nope") == [0]
    assert (
        folder.token_id("bos_token") == 1 and folder.token_id("eos_token") == 2 and folder.token_id("pad_token") is None
    )
    assert not folder.adds_bos()  # the post-processor adds nothing
    for option in ({"add_prefix_space": True}, {"do_lower_case": True}, {"backend": "sentencepiece"}):
        assert FolderTokenizer.open(_tiny_folder(tmp_path / str(len(str(option))), **option)) is None, option
    # a config that says BOS is added while tokenizer.json does not add it: transformers would change the rule
    assert FolderTokenizer.open(_tiny_folder(tmp_path / "bos", add_bos_token=True)) is None
    assert FolderTokenizer.open(_tiny_folder(tmp_path / "nobos", add_bos_token=False)) is not None
    (tmp_path / "empty").mkdir()
    assert FolderTokenizer.open(tmp_path / "empty") is None


def test_the_chat_template_is_found_where_transformers_finds_it(tmp_path):
    folder = _tiny_folder(tmp_path, chat_template=[{"name": "default", "template": "{{ bos_token }}d"}])
    assert FolderTokenizer.open(folder).apply_chat_template([], False) == "<s>d"
    (folder / "chat_template.jinja").write_text("{{ eos_token }}j")
    assert FolderTokenizer.open(folder).apply_chat_template([], False) == "</s>j"


def test_templates_render_in_transformers_environment():
    template = compile_template(
        "{% for m in messages %}{% if m.role == 'bad' %}{{ raise_exception('no ' + m.role) }}{% endif %}"
        "{% generation %}{{ m | tojson }}{% endgeneration %}{% if loop.index == 1 %}{% break %}{% endif %}{% endfor %}\n"
        "  {% if add_generation_prompt %}GO{% endif %}"
    )
    out = template.render(messages=[{"role": "user", "content": "<é>"}, {"role": "x"}], add_generation_prompt=True)
    assert out == '{"role": "user", "content": "<é>"}GO'  # no HTML escaping, no ASCII escaping; blocks trimmed
    with pytest.raises(jinja2.exceptions.TemplateError, match="no bad"):
        template.render(messages=[{"role": "bad"}], add_generation_prompt=False)


def _task_texts() -> list[str]:
    texts = []
    for task in sorted((ROOT / "tasks").iterdir()):
        for path in sorted(task.glob("data/*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines()[:300]:
                row = json.loads(line)
                texts += [v for v in row.values() if isinstance(v, str)]
    return texts


CONVERSATIONS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Text: play jazz\nIntent:"}],
    [
        {"role": "system", "content": "Classify."},
        {"role": "user", "content": "book a table"},
        {"role": "assistant", "content": "BookRestaurant"},
        {"role": "user", "content": "  spaced \n\n é ✓ {json: [1]}  "},
    ],
]


@pytest.mark.model
@pytest.mark.parametrize("alias", ["smollm2-135m-instruct", "gemma3-270m"])
def test_the_light_text_side_equals_transformers_on_the_bundled_models(alias):
    from transformers import AutoTokenizer

    from ladder.backends.hf.model import HFModel, resolve_model

    model = HFModel(resolve_model(alias))
    assert model.light is not None  # both bundled folders are read without transformers
    reference = AutoTokenizer.from_pretrained(model.ref.path)
    texts = _task_texts()
    assert len(texts) > 1000
    for text in texts + ["", " ", "a", "\n\n", "<|im_end|>x", "<bos>y"]:
        assert model.encode_continuation(text) == reference(text, add_special_tokens=False).input_ids, text
    probe = reference("a").input_ids
    assert model._adds_bos == (reference.bos_token_id is not None and probe[0] == reference.bos_token_id)
    assert (model.bos_token_id, model.eos_token_id, model.pad_token_id) == (
        reference.bos_token_id,
        reference.eos_token_id,
        reference.pad_token_id,
    )
    assert model.chat_template == reference.chat_template
    if reference.chat_template:
        for messages in CONVERSATIONS:
            for opening in (True, False):
                expected = reference.apply_chat_template(messages, tokenize=False, add_generation_prompt=opening)
                assert model.light.apply_chat_template(messages, opening) == expected
        formatter = model.formatter("chat")
        prompt = formatter.prompt(CONVERSATIONS[1])
        assert model.encode(prompt) == reference(prompt).input_ids  # the whole prompt, special tokens as the model's


@pytest.mark.model
def test_a_folder_read_by_transformers_alone_gives_the_same_text_side(monkeypatch):
    from ladder.backends.hf.model import HFModel, resolve_model

    light = HFModel(resolve_model("smollm2-135m-instruct"))
    monkeypatch.setattr(FolderTokenizer, "open", classmethod(lambda cls, path: None))
    heavy = HFModel(resolve_model("smollm2-135m-instruct"))
    assert heavy.light is None and light.light is not None
    texts = _task_texts()[:200]
    assert [heavy.encode(t) for t in texts] == [light.encode(t) for t in texts]
    assert heavy.pad_id == light.pad_id and heavy._adds_bos == light._adds_bos
    for messages in CONVERSATIONS:
        assert heavy.formatter("auto").prompt(messages) == light.formatter("auto").prompt(messages)
        assert heavy.formatter("chat").completion(messages, "x") == light.formatter("chat").completion(messages, "x")
