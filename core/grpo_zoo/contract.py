"""Contract checks shared by the test kit and `grpo-zoo registry check`."""
from __future__ import annotations

import inspect

from . import hookspecs
from .plugins import implemented_hooks


class ContractError(AssertionError):
    """A plugin breaks the hook contract (an AssertionError so pytest reports it as a failure)."""


def _require(ok: bool, message: str) -> None:
    if not ok:  # explicit raise: checks must survive python -O
        raise ContractError(message)


def check_plugin(plugin) -> list[str]:
    """Check a plugin (module, class or instance); returns the hooks it implements.

    Every hook implementation must name a real hookspec and take only
    arguments the spec passes; a config model must build with defaults and
    forbid unknown keys.
    """
    if isinstance(plugin, type):
        plugin = plugin()
    hooks = implemented_hooks(plugin)
    _require(bool(hooks), f"{plugin!r} implements no grpo_zoo hook")
    for name in hooks:
        spec = getattr(hookspecs, name, None)
        _require(spec is not None, f"{name} is not a grpo_zoo hookspec (typo?)")
        allowed = set(inspect.signature(spec).parameters)
        params = set(inspect.signature(getattr(plugin, name)).parameters) - {"self"}
        _require(
            params <= allowed, f"{name} takes {sorted(params - allowed)} that the spec does not pass (spec: {sorted(allowed)})"
        )
    if "zoo_config_model" in hooks:
        model = plugin.zoo_config_model()
        _require(model.model_config.get("extra") == "forbid", f"{model.__name__} must forbid unknown keys")
        model.model_validate(model().model_dump())  # every key has a default, and defaults are valid
    return hooks
