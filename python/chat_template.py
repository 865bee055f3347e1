"""Chat conversations → prompt text, and → token ids with an assistant mask (for SFT).

:func:`render_chat` renders a Jinja chat template the way transformers'
``apply_chat_template(tokenize=False)`` does (``utils/chat_template_utils.py``: a sandboxed
jinja2 environment with ``trim_blocks`` and ``lstrip_blocks``, the ``loopcontrols``
extension, globals ``raise_exception`` and ``strftime_now``, variables ``messages``,
``add_generation_prompt``, ``bos_token``, ``eos_token``); the Deno side renders the same
template with @huggingface/jinja (tokenizers/chat_template.ts ``renderChat``).

:func:`encode_chat` finds each assistant turn by rendering prefixes of the conversation: turn
``i`` spans from the end of ``render(messages[:i], add_generation_prompt=True)`` (the prompt
a model sees when it must write turn ``i``) to the end of ``render(messages[:i + 1])`` (its
content and whatever the template closes it with, e.g. EOS). Those spans are the tokens the
SFT loss counts; everything else (system and user turns, role headers, BOS) is masked. Each
span and each gap is encoded on its own, so the ids of a prompt are exactly what ``gollm
chat`` feeds the model before it generates.

The default template for models trained here is python/chat_template.jinja (plain
``System:`` / ``User:`` / ``Assistant:`` turns, EOS after each assistant turn).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from config import GollmError

#: The chat template python/sft.py gives a model whose base has none.
DEFAULT_TEMPLATE_PATH = Path(__file__).resolve().parent / "chat_template.jinja"

#: The roles a conversation line may use.
ROLES = ("system", "user", "assistant")


@lru_cache(maxsize=8)
def _compile(template: str):  # -> jinja2.Template
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None, sort_keys=False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as e:
        raise GollmError(f"chat template cannot be parsed: {e.message} (line {e.lineno})") from None


def render_chat(
    template: str,
    messages: list[dict[str, str]],
    add_generation_prompt: bool = False,
    bos_token: str = "",
    eos_token: str = "",
) -> str:
    """Render a conversation with a Jinja chat template (transformers' semantics, see module doc).

    Args:
        template: The Jinja source.
        messages: ``[{"role": ..., "content": ...}, ...]``, oldest first.
        add_generation_prompt: Append the header that starts the assistant's reply.
        bos_token, eos_token: The special-token texts the template may use.

    Returns:
        The prompt text (special tokens as text, e.g. ``<|bos|>``).

    Raises:
        GollmError: when the template cannot be parsed or fails (``raise_exception`` included).
    """
    import jinja2

    try:
        return _compile(template).render(
            messages=messages, add_generation_prompt=add_generation_prompt, bos_token=bos_token, eos_token=eos_token
        )
    except jinja2.exceptions.TemplateError as e:
        raise GollmError(f"chat template failed to render: {e}") from None


@dataclass(frozen=True)
class EncodedChat:
    """A conversation as token ids with a mask of the assistant tokens.

    Attributes:
        ids: Token ids of the rendered conversation (BOS first when the template writes it).
        assistant: Same length as ``ids``; True where the id belongs to an assistant turn
            (its content and the template's end of turn, e.g. EOS).
    """

    ids: list[int]
    assistant: list[bool]


def assistant_spans(
    template: str, messages: list[dict[str, str]], bos_token: str, eos_token: str
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant turn in it.

    Returns:
        ``(text, spans)``: ``text`` is ``render_chat(template, messages)``; each span
        ``(start, end)`` covers one assistant turn (see the module doc).

    Raises:
        GollmError: when the template renders a prefix of the conversation differently from
            the start of the whole (the turns cannot be located), or fails to render.
    """
    text = render_chat(template, messages, False, bos_token, eos_token)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = render_chat(template, messages[:i], True, bos_token, eos_token)
        upto = render_chat(template, messages[: i + 1], False, bos_token, eos_token)
        if not (text.startswith(upto) and upto.startswith(prompt)):
            raise GollmError(
                f"chat template: message {i} (assistant) cannot be located: rendering the conversation up to it "
                "does not give a prefix of the whole (the template must render turns in order)"
            )
        spans.append((len(prompt), len(upto)))
    return text, spans


def encode_chat(tok, template: str, messages: list[dict[str, str]]) -> EncodedChat:
    """Render and tokenize a conversation, marking the assistant tokens (see the module doc).

    Args:
        tok: A :class:`tokenizer.Tokenizer` (special-token text is encoded as special ids).
        template: The Jinja chat template.
        messages: The conversation.

    Returns:
        The ids and the assistant mask.

    Raises:
        GollmError: see :func:`assistant_spans`.
    """
    names = {i: s for s, i in tok.file.specials.items()}
    bos = names.get(tok.bos_id, "") if tok.bos_id is not None else ""
    eos = names.get(tok.eos_id, "") if tok.eos_id is not None else ""
    text, spans = assistant_spans(template, messages, bos, eos)
    ids: list[int] = []
    mask: list[bool] = []
    at = 0
    for start, end in [*spans, (len(text), len(text))]:
        for piece, is_assistant in ((text[at:start], False), (text[start:end], True)):
            if piece:
                part = tok.encode(piece, special=True)
                ids += part
                mask += [is_assistant] * len(part)
        at = end
    return EncodedChat(ids, mask)


def check_messages(obj: Any, where: str) -> list[dict[str, str]]:
    """Validate one chat record (``{"messages": [{"role", "content"}, ...]}``, OpenAI/HF format).

    Args:
        obj: The parsed JSON value of one line.
        where: ``<file>:<line>``, named in errors.

    Returns:
        The messages as plain ``{"role", "content"}`` dicts.

    Raises:
        GollmError: naming ``where`` and the field for a record that is not a conversation,
            a role outside system/user/assistant, non-string content, or no assistant turn.
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list) or not obj["messages"]:
        raise GollmError(f'{where}: expected {{"messages": [{{"role": ..., "content": ...}}, ...]}}')
    out = []
    for k, m in enumerate(obj["messages"]):
        if not isinstance(m, dict):
            raise GollmError(f"{where}: messages[{k}] must be an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise GollmError(f"{where}: messages[{k}].role must be one of {', '.join(ROLES)}, got {json.dumps(role)}")
        if not isinstance(content, str):
            raise GollmError(f"{where}: messages[{k}].content must be a string, got {json.dumps(content)[:40]}")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in out):
        raise GollmError(f"{where}: the conversation has no assistant message (nothing to learn)")
    return out


def read_chat_jsonl(path: str | Path) -> list[list[dict[str, str]]]:
    """Read a chat JSONL file: one conversation per non-blank line (see :func:`check_messages`).

    Raises:
        GollmError: when the file is missing, not UTF-8, has a line that is not JSON or not a
            conversation (naming ``<file>:<line>``), or holds no conversation.
    """
    path = Path(path)
    if not path.is_file():
        raise GollmError(f"{path}: chat data file does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise GollmError(f"{path}: not UTF-8 text (byte offset {e.start})") from None
    convs = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise GollmError(f"{path}:{n}: not JSON ({e.msg} at column {e.colno})") from None
        convs.append(check_messages(obj, f"{path}:{n}"))
    if not convs:
        raise GollmError(f"{path}: no conversations (expected one JSON object per line)")
    return convs
