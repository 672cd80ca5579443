"""Meta-tests (datasette's rule): every hookspec is documented in docs/hooks.md with each of its
arguments, exercised by some test, and implemented by at least one first-party module."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from grpo_zoo import hookspecs
from grpo_zoo.plugins import BUILTIN_MODULES, PER_PLUGIN_HOOKS, _first_hooks

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "hooks.md"
CORE = ROOT / "core" / "grpo_zoo"

SPECS = sorted(n for n in dir(hookspecs) if n.startswith("zoo_") and hasattr(getattr(hookspecs, n), "grpo_zoo_spec"))


def doc_sections() -> dict[str, str]:
    """``### name`` heading -> the text up to the next heading of level 3 or higher."""
    text = DOCS.read_text()
    out = {}
    for m in re.finditer(r"^### (\S+)\s*$(.*?)(?=^#{1,3} |\Z)", text, re.M | re.S):
        out[m.group(1)] = m.group(2)
    return out


def test_specs_are_found():
    assert len(SPECS) >= 20 and "zoo_rollout" in SPECS and "zoo_config_model" in SPECS
    assert PER_PLUGIN_HOOKS <= set(SPECS)
    assert set(_first_hooks()) <= set(SPECS)


@pytest.mark.parametrize("hook", SPECS)
def test_hook_is_documented_with_its_arguments(hook):
    sections = doc_sections()
    assert hook in sections, f"docs/hooks.md has no '### {hook}' section"
    body = sections[hook]
    for arg in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert f"`{arg}`" in body, f"docs/hooks.md '### {hook}' does not mention its argument `{arg}`"
    style = "first" if hook in _first_hooks() else "per plugin" if hook in PER_PLUGIN_HOOKS else "all"
    assert f"Style: **{style}**" in body, f"'### {hook}' must state its call style: **{style}**"
    assert "Returns" in body and "Built-in" in body, f"'### {hook}' needs its return value and built-in"


def test_docs_do_not_describe_hooks_that_do_not_exist():
    extra = sorted(h for h in doc_sections() if h.startswith("zoo_") and h not in SPECS)
    assert not extra, f"docs/hooks.md documents unknown hooks: {extra}"


def _test_files() -> list[Path]:
    files = list((ROOT / "tests").rglob("*.py")) + list((ROOT / "plugins").glob("*/tests/**/*.py"))
    return [f for f in files if f.name != Path(__file__).name]


@pytest.fixture(scope="module")
def test_sources() -> str:
    return "\n".join(f.read_text(errors="replace") for f in _test_files())


@pytest.mark.parametrize("hook", SPECS)
def test_hook_is_tested(hook, test_sources):
    assert re.search(rf"\b{hook}\b", test_sources), (
        f"no test under tests/ or plugins/*/tests/ mentions {hook} (outside {Path(__file__).name})"
    )


def _first_party_sources() -> dict[str, str]:
    """module/plugin label -> source text, for core's built-ins and every plugins/<name>/ package."""
    out = {}
    for name, module in BUILTIN_MODULES.items():
        path = CORE / Path(*module.split(".")[1:]).with_suffix(".py")
        out[name] = path.read_text()
    for folder in sorted(p for p in (ROOT / "plugins").iterdir() if p.is_dir()):
        files = [f for f in folder.rglob("*.py") if "tests" not in f.relative_to(folder).parts]
        out[f"plugins/{folder.name}"] = "\n".join(f.read_text(errors="replace") for f in files)
    return out


def test_builtin_modules_exist():
    for name, source in _first_party_sources().items():
        if name in BUILTIN_MODULES:
            assert "hookimpl" in source, name


@pytest.mark.parametrize("hook", SPECS)
def test_hook_has_a_first_party_implementation(hook):
    sources = _first_party_sources()
    pattern = re.compile(rf"^\s*def {hook}\s*\(", re.M)
    owners = [name for name, src in sources.items() if pattern.search(src)]
    assert owners, (
        f"{hook} has no first-party implementation: no built-in module ({', '.join(BUILTIN_MODULES)}) "
        f"and no plugins/*/ package defines `def {hook}`"
    )
