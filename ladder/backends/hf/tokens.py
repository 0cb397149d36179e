"""A model folder's tokenizer and chat template without transformers or torch.

What a cached assessment needs of a model is text: prompts rendered through its chat template, token counts, the
beginning-of-sequence rule. ``FolderTokenizer`` reads them from the folder's ``tokenizer.json`` (the ``tokenizers``
library, which transformers' fast tokenizers run on underneath) and its chat template (jinja2, in the environment
transformers renders templates in), so an unchanged re-run imports neither torch nor transformers. A folder this
cannot read the same way (no ``tokenizer.json``, options that change encoding) gets ``None`` from ``open`` and
``HFModel`` uses transformers' own tokenizer for everything; ``tests/test_tokens.py`` holds the two equal on both
bundled models over every shipped task's text.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

# tokenizer_config.json options under which transformers' tokenizer does more than tokenizer.json says
_ENCODING_OPTIONS = ("add_prefix_space", "do_lower_case", "split_special_tokens", "legacy", "add_eos_token")


def _token(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _chat_template(path: Path, config: dict) -> str | None:
    """The folder's chat template where transformers finds it: ``chat_template.jinja``, ``chat_template.json``, or
    the tokenizer config (a named list's ``default``)."""
    if (path / "chat_template.jinja").is_file():
        return (path / "chat_template.jinja").read_text(encoding="utf-8")
    if (path / "chat_template.json").is_file():
        return json.loads((path / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None


class FolderTokenizer:
    """The folder's tokenizer.json and chat template, read without transformers (see the module's docstring)."""

    def __init__(self, path: Path, config: dict):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.special_tokens = {k: t for k, v in config.items() if k.endswith("_token") and (t := _token(v)) is not None}
        self.chat_template = _chat_template(path, config)
        self._template = None

    @classmethod
    def open(cls, path: Path) -> FolderTokenizer | None:
        """The folder's tokenizer, or None where only transformers reads it the way transformers does."""
        if not (path / "tokenizer.json").is_file():
            return None
        config_file = path / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        if config.get("backend", "tokenizers") != "tokenizers" or any(config.get(k) for k in _ENCODING_OPTIONS):
            return None
        folder = cls(path, config)
        wants_bos = config.get("add_bos_token")
        if isinstance(wants_bos, bool) and wants_bos != folder.adds_bos():  # transformers would change the file's rule
            return None
        return folder

    def adds_bos(self) -> bool:
        """Whether a whole prompt starts with the beginning-of-sequence token (the tokenizer's own rule)."""
        bos, probe = self.token_id("bos_token"), self.encode("a", add_special_tokens=True)
        return bos is not None and len(probe) > 0 and probe[0] == bos

    def token_id(self, name: str) -> int | None:
        """The id of special token ``name`` (``bos_token``, ``eos_token``, ``pad_token``...), None if it has none."""
        token = self.special_tokens.get(name)
        return self._tokenizer.token_to_id(token) if token is not None else None

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def apply_chat_template(self, messages: list, add_generation_prompt: bool) -> str:
        """The conversation rendered as ``tokenizer.apply_chat_template(messages, tokenize=False, ...)`` renders it."""
        if self._template is None:
            self._template = compile_template(self.chat_template or "")
        return self._template.render(
            messages=messages, add_generation_prompt=add_generation_prompt, **self.special_tokens
        )


def compile_template(source: str):
    """A chat template in transformers' rendering environment (``chat_template_utils._compile_jinja_template``):
    sandboxed, trim_blocks and lstrip_blocks, loop controls, ``tojson`` without HTML escaping, ``raise_exception``,
    ``strftime_now``, and ``{% generation %}`` blocks rendered as their content."""
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)
