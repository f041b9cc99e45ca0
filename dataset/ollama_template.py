"""twin's prompt as an Ollama TEMPLATE: a Go text/template that lays out a chat request
as `Prompt` lays out a conversation, so a twin run by Ollama reads the prompt it was
trained on.

Ollama hands the template `.Messages` (after merging consecutive messages of one role
with a blank line) and `.System` (every system message, joined). Here `user` is the
other person, `assistant` the owner, and the system text the owner's facts. The last
message is the one to answer; the messages before it are the context, one tagged turn
a line. A conversation of one message gets the template without context, as in
training. Only the builtins of Go's text/template are used (`len`, `slice`, `eq`, `ne`,
`and`), so any Ollama runs it.
"""

from __future__ import annotations

from dataset.prompt import Prompt

_CONTEXT, _INSTRUCTION, _MEMORY, _FACTS = (f"\x00{n}\x00" for n in range(4))

# Whether any message before the last is not the system's: then there is context.
_HAS_CONTEXT = (
    '{{ $context := false }}{{ range $i, $m := .Messages }}{{ if and (ne $m.Role "system") '
    "(ne (len (slice $.Messages $i)) 1) }}{{ $context = true }}{{ end }}{{ end }}"
)


def go_template(prompt: Prompt) -> str:
    """The TEMPLATE of a Modelfile for adapters trained with `prompt`."""
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
