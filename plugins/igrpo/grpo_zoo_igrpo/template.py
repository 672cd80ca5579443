"""The draft-augmented prompt q' (stage 2 context) and template checks."""
from __future__ import annotations

import string

DEFAULT_TEMPLATE = (
    "{question}\n\n"
    "Here is an earlier draft solution to this problem. It may contain mistakes: use it as guidance, "
    "not as ground truth.\n\n"
    "<draft>\n{draft}\n</draft>\n\n"
    "Write a new, complete solution that improves on the draft: check its reasoning and fix any error. "
    "Keep its final answer only if you have verified it, and do not copy the draft word for word."
)

DEFAULT_FOLLOWUP = (
    "The answer above is a draft and may be wrong: use it as guidance, not as ground truth. "
    "Write a new, complete solution that improves on it: check its reasoning and fix any error. "
    "Keep its final answer only if you have verified it, and do not repeat the draft word for word."
)


def template_fields(template: str) -> set[str]:
    """Names of the ``{placeholders}`` of a str.format template; raises ValueError on a malformed one."""
    names = set()
    for _, name, spec, conv in string.Formatter().parse(template):
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise ValueError("positional placeholders ({} or {0}) are not allowed; use {question} and {draft}")
        names.add(name)
    return names


def check_template(template: str, required: set[str], allowed: set[str]) -> str:
    try:
        names = template_fields(template)
    except ValueError as exc:
        raise ValueError(f"malformed template: {exc} (write literal braces as {{{{ and }}}})") from None
    unknown = names - allowed
    if unknown:
        raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = required - names
    if missing:
        raise ValueError(f"the template must contain {', '.join('{' + m + '}' for m in sorted(missing))}")
    return template


def augment_prompt(prompt, draft: str, template: str, chat_mode: str = "append", followup: str = DEFAULT_FOLLOWUP,
                   system_instruction: str | None = None):
    """Build q' from the prompt q (raw text or chat messages) and the chosen draft d.

    - raw text: ``template`` with ``{question}`` = the whole text and ``{draft}`` = d.
    - chat messages, ``chat_mode="append"``: the last user message's content
      becomes ``template`` filled with that content and d (one user turn).
    - chat messages, ``chat_mode="turns"``: d is added as an assistant turn,
      followed by a new user turn with ``followup``.
    ``system_instruction`` (chat only) is appended to the system message, or
    inserted as one when there is none. The input is never modified.
    """
    draft = draft.strip()
    if isinstance(prompt, str):
        return template.format(question=prompt, draft=draft)
    messages = [dict(m) for m in prompt]
    if system_instruction:
        if messages and messages[0].get("role") == "system":
            messages[0]["content"] = f"{messages[0]['content']}\n\n{system_instruction}"
        else:
            messages.insert(0, {"role": "system", "content": system_instruction})
    if chat_mode == "turns":
        return messages + [{"role": "assistant", "content": draft}, {"role": "user", "content": followup}]
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        return messages + [{"role": "user", "content": template.format(question="", draft=draft)}]
    last = users[-1]
    content = messages[last].get("content")
    if not isinstance(content, str):
        raise ValueError(
            f"igrpo: the last user message has non-text content ({type(content).__name__}); "
            "use igrpo.chat_mode = 'turns' for such prompts"
        )
    messages[last]["content"] = template.format(question=content, draft=draft)
    return messages
