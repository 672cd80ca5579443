"""The plugin catalog: one TOML file per plugin under registry/plugins/, validated by a pydantic schema.

One file per entry (rather than one shared file) lets third parties add an
entry in a pull request that never conflicts with anyone else's.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import hookspecs
from .config import format_errors, tomllib

HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("zoo_"))


class Paper(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    arxiv: str | None = Field(None, description="arXiv id, e.g. 2601.22582")

    @field_validator("arxiv")
    @classmethod
    def _arxiv(cls, v):
        if v is not None and not re.fullmatch(r"\d{4}\.\d{4,5}(v\d+)?", v):
            raise ValueError(f"not an arXiv id: {v!r}")
        return v


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="entry point name in the grpo_zoo group")
    distribution: str
    kind: Literal["builtin", "first-party", "third-party"]
    summary: str
    hooks: list[str]
    papers: list[Paper] = Field(default_factory=list)
    min_core_version: str = "0.1.0"
    homepage: str | None = None

    @field_validator("min_core_version")
    @classmethod
    def _min_core_version(cls, v):
        from packaging.version import InvalidVersion, Version

        try:
            Version(v)
        except InvalidVersion:
            raise ValueError(f"not a version: {v!r} (e.g. '0.1.0')") from None
        return v

    @model_validator(mode="after")
    def _third_party_homepage(self):
        if self.kind == "third-party" and not self.homepage:
            raise ValueError("homepage: a third-party entry needs the URL of its source or package page")
        return self

    @field_validator("hooks")
    @classmethod
    def _hooks(cls, v):
        bad = [h for h in v if h not in HOOKS]
        if bad:
            raise ValueError(f"unknown hook(s) {bad}; hooks are {HOOKS}")
        return sorted(v)


def candidate_roots() -> list[Path]:
    """Where the catalog is looked for: $GRPO_ZOO_REGISTRY, the source checkout this package
    runs from (editable installs), ./registry/plugins (a checkout as working directory)."""
    env = os.environ.get("GRPO_ZOO_REGISTRY")
    found = [Path(env)] if env else []
    return found + [Path(__file__).resolve().parents[2] / "registry" / "plugins", Path.cwd() / "registry" / "plugins"]


def default_root() -> Path:
    roots = candidate_roots()
    return next((r for r in roots if r.is_dir()), roots[0])


def load_catalog(root: str | Path | None = None) -> list[Entry]:
    if root:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"registry folder not found: {root}")
    else:
        root = default_root()
        if not root.is_dir():
            looked = ", ".join(str(r) for r in candidate_roots())
            raise FileNotFoundError(
                f"registry folder not found (looked in {looked}); the catalog lives in the source repository's "
                "registry/plugins: pass --root PATH or set GRPO_ZOO_REGISTRY"
            )
    entries, errors, names = [], [], {}
    for path in sorted(root.glob("*.toml")):
        try:
            entry = Entry.model_validate(tomllib.loads(path.read_text()))
        except ValidationError as err:
            errors.append(f"{path.name}: {format_errors(err)}")
            continue
        except tomllib.TOMLDecodeError as err:
            errors.append(f"{path.name}: invalid TOML: {err}")
            continue
        if entry.name != path.stem:
            errors.append(f"{path.name}: name {entry.name!r} differs from the file name (expected {path.stem!r})")
            continue
        if entry.name in names:
            errors.append(f"{path.name}: name {entry.name!r} already used by {names[entry.name]}")
        names[entry.name] = path.name
        entries.append(entry)
    if errors:
        raise RegistryError("registry errors:\n" + "\n".join(errors))
    return entries


class RegistryError(ValueError):
    """The catalog has invalid entries (the message lists each, naming the file and key)."""


def installed_problems(entry: Entry, dist_name: str | None, core_version: str) -> list[str]:
    """What an entry gets wrong about the installed plugin: its distribution, or a core version it needs."""
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    out = []
    if dist_name is not None and canonicalize_name(dist_name) != canonicalize_name(entry.distribution):
        out.append(f"catalog says distribution {entry.distribution!r} but the installed plugin comes from {dist_name!r}")
    if Version(entry.min_core_version) > Version(core_version):
        out.append(f"min_core_version {entry.min_core_version} is above the installed grpo-zoo {core_version}")
    return out
