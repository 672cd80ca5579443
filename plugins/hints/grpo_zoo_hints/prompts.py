"""What the hinter is asked, and the hinted prompt the reasoner then sees."""
from __future__ import annotations

import copy

from grpo_zoo.types import Task

SYSTEM = "You are a patient tutor. You write short hints that help a student solve a problem on their own."

# What each hint level asks for. The separate hinter (HiLL) always gets level 1;
# self-hinting (SAGE) escalates 1 -> 3 while no hinted rollout succeeds.
LEVELS = {
    1: "Write one short conceptual hint (1-3 sentences) that names the idea or method the student needs.",
    2: "Write one specific hint (1-3 sentences) that names the key step and points out where the attempt went wrong.",
    3: "Write one detailed hint (at most 3 sentences) that lists the steps of the solution in order.",
}


def reference_solution(task: Task, solution_key: str = "solution") -> str:
    """The worked solution from ``task.metadata[solution_key]`` (if any) and the final answer."""
    parts = []
    solution = task.metadata.get(solution_key) if solution_key else None
    if solution:
        parts.append(str(solution).strip())
    if task.answer is not None:
        parts.append(f"Final answer: {task.answer}")
    return "\n".join(parts) or "(no reference solution available)"


def hinter_messages(task: Task, attempt: str, level: int = 1, solution_key: str = "solution", max_attempt_chars: int = 1200) -> list[dict]:
    attempt = attempt.strip()
    if len(attempt) > max_attempt_chars:
        attempt = attempt[:max_attempt_chars] + " [...]"
    user = (
        "A student tried the problem below and got it wrong.\n\n"
        f"### Problem\n{task.question().strip()}\n\n"
        f"### The student's attempt\n{attempt or '(empty)'}\n\n"
        f"### Reference solution (the student cannot see it)\n{reference_solution(task, solution_key)}\n\n"
        f"{LEVELS[level]} Do not state the final answer or any result that gives it away. "
        "Reply with the hint inside <hint>...</hint> and nothing else."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def hinted_prompt(prompt, task: Task, hint: str, prefix: str = "Hint: "):
    """The reasoner's prompt with the hint after the question, separated by a blank line.

    Chat prompts get the hint at the end of their last user message. A plain
    text prompt (used verbatim, perhaps already templated) gets it right after
    the question when the question occurs in it, else at its end.
    """
    text = f"\n\n{prefix}{hint}"
    if isinstance(prompt, str):
        question = task.question()
        at = prompt.rfind(question) if question else -1
        if at < 0:
            return prompt.rstrip() + text
        end = at + len(question)
        return prompt[:end] + text + prompt[end:]
    messages = copy.deepcopy(list(prompt))
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        return messages + [{"role": "user", "content": text.lstrip()}]
    last = messages[users[-1]]
    last["content"] = str(last["content"]).rstrip() + text
    return messages
