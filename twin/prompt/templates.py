"""twin's prompt in other tools' template languages, so that a twin they run reads the
prompt it was trained on: a Go text/template for Ollama's Modelfile, a Jinja chat
template for transformers and vLLM.

Both lay out a chat request as `Prompt` lays out a conversation: `user` messages are
the other person's, `assistant` messages the owner's, system messages the owner's
facts. The last message is the one to answer; those before it are the context, one
tagged turn a line. A conversation of one message gets the template without context,
as in training. The template's own text is rendered by Python with markers where its
fields go, and the markers are then replaced by the other language's expressions.
"""

from __future__ import annotations

import json
import re

from twin.prompt.text import Prompt

_CONTEXT, _INSTRUCTION, _MEMORY, _FACTS = (f"\x00{n}\x00" for n in range(4))

# Whether any message before the last is not the system's: then there is context.
_HAS_CONTEXT = (
    '{{ $context := false }}{{ range $i, $m := .Messages }}{{ if and (ne $m.Role "system") '
    "(ne (len (slice $.Messages $i)) 1) }}{{ $context = true }}{{ end }}{{ end }}"
)


def go_template(prompt: Prompt) -> str:
    """The TEMPLATE of a Modelfile for adapters trained with `prompt`.

    Ollama hands it `.Messages`, consecutive messages of one role already merged (with
    a blank line, where twin joins a burst with a newline), and `.System`. Only the
    builtins of Go's text/template are used (`len`, `slice`, `eq`, `ne`, `and`), so any
    Ollama runs it."""
    s = prompt.settings
    marks = {"context": _CONTEXT, "instruction": _INSTRUCTION, "memory": _MEMORY}
    with_context = _go_text(s.template.format(**marks))
    without = _go_text(s.template_no_context.format(**marks))
    facts = _go_text(s.facts_template.format(facts=_FACTS))

    def filled(text: str) -> str:
        return (
            text.replace(_MEMORY, "{{ if .System }}" + facts + "{{ end }}")
            .replace(_FACTS, "{{ .System }}")
            .replace(_CONTEXT, _context(prompt))
            .replace(_INSTRUCTION, _INSTRUCTION_GO)
        )

    return (
        _HAS_CONTEXT
        + "{{ if $context }}"
        + filled(with_context)
        + "{{ else }}"
        + filled(without)
        + "{{ end }}"
    )


# The last message's text.
_INSTRUCTION_GO = (
    "{{ range $i, $m := .Messages }}{{ if eq (len (slice $.Messages $i)) 1 }}"
    "{{ $m.Content }}{{ end }}{{ end }}"
)


def _context(prompt: Prompt) -> str:
    """Every message but the last and the system's, tagged, a newline between two."""
    s = prompt.settings
    return (
        "{{ $n := 0 }}{{ range $i, $m := .Messages }}"
        '{{ if and (ne $m.Role "system") (ne (len (slice $.Messages $i)) 1) }}'
        "{{ if $n }}\n{{ end }}{{ $n = 1 }}"
        f'{{{{ if eq $m.Role "assistant" }}}}{_go_text(s.owner_tag)}'
        f"{{{{ else }}}}{_go_text(s.other_tag)}{{{{ end }}}}: {{{{ $m.Content }}}}"
        "{{ end }}{{ end }}"
    )


def _go_text(text: str) -> str:
    """Literal text inside a Go template: `{{` would open an action."""
    return text.replace("{{", '{{ "{{" }}')


def modelfile(prompt: Prompt, base: str, adapter: str | None) -> str:
    """An Ollama Modelfile: `base` (a GGUF path or a model name), the adapter (a GGUF
    LoRA path) if any, twin's prompt as the template, and its stop sequences. Values
    with newlines go in triple quotes, which Ollama reads verbatim."""
    template = go_template(prompt)
    if '"""' in template:
        raise ValueError('the prompt template holds """, which a Modelfile cannot quote')
    lines = [f"FROM {base}"]
    if adapter is not None:
        lines.append(f"ADAPTER {adapter}")
    lines.append(f'TEMPLATE """{template}"""')
    lines += [f'PARAMETER stop """{stop}"""' for stop in prompt.stop_markers]
    return "\n".join(lines) + "\n"


def jinja_template(prompt: Prompt) -> str:
    """A chat template (`chat_template.jinja`) for adapters trained with `prompt`: what
    `vllm serve --chat-template` and transformers' `apply_chat_template` take. It merges
    consecutive messages of one side with the burst separator, as twin merges a burst,
    and always ends where the owner's reply begins. Literal text is written as Jinja
    string expressions, so the whitespace options those tools set (trim_blocks,
    lstrip_blocks) cannot eat a newline of it."""
    s = prompt.settings
    marks = {"context": _CONTEXT, "instruction": _INSTRUCTION, "memory": _MEMORY}
    facts = _jinja_text(s.facts_template.format(facts=_FACTS)).replace(_FACTS, "{{ facts }}")
    context = (
        "{% for turn in turns[:-1] %}{% if not loop.first %}{{ '\\n' }}{% endif %}"
        f"{{% if turn.owner %}}{_jinja_text(s.owner_tag)}{{% else %}}{_jinja_text(s.other_tag)}"
        f"{{% endif %}}{_jinja_text(': ')}{{{{ turn.text }}}}{{% endfor %}}"
    )

    def filled(template: str) -> str:
        return (
            _jinja_text(template.format(**marks))
            .replace(_MEMORY, "{% if facts %}" + facts + "{% endif %}")
            .replace(_CONTEXT, context)
            .replace(_INSTRUCTION, "{{ turns[-1].text }}")
        )

    join = json.dumps(s.burst_separator, ensure_ascii=False)  # a Jinja string literal
    gather = (
        "{% set ns = namespace(facts=[], turns=[]) %}"
        "{% for m in messages %}"
        "{% if m.role in ['system', 'developer'] %}"
        "{% if m.content | trim %}{% set ns.facts = ns.facts + [m.content | trim] %}{% endif %}"
        "{% elif ns.turns and ns.turns[-1].owner == (m.role == 'assistant') %}"
        "{% set ns.turns = ns.turns[:-1] + [{'owner': ns.turns[-1].owner, "
        f"'text': ns.turns[-1].text ~ {join} ~ m.content}}] %}}"
        "{% else %}"
        "{% set ns.turns = ns.turns + [{'owner': m.role == 'assistant', 'text': m.content}] %}"
        "{% endif %}"
        "{% endfor %}"
        "{% set facts = ns.facts | join('\\n') %}"
        "{% set turns = ns.turns %}"
    )
    return (
        gather
        + "{% if turns | length > 1 %}"
        + filled(s.template)
        + "{% else %}"
        + filled(s.template_no_context)
        + "{% endif %}"
    )


_MARKS = re.compile("(" + "|".join(map(re.escape, (_CONTEXT, _INSTRUCTION, _MEMORY, _FACTS))) + ")")


def _jinja_text(text: str) -> str:
    """Literal text as Jinja string expressions, the markers left between them."""
    return "".join(
        piece if _MARKS.fullmatch(piece) else "{{ " + json.dumps(piece, ensure_ascii=False) + " }}"
        for piece in _MARKS.split(text)
        if piece
    )
