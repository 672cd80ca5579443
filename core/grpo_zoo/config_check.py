"""Whole-config checks at load time (zoo_check_config): problems that span sections, before any model loads."""
from __future__ import annotations

from .config import ConfigError
from .plugins import PluginHookError


def check_whole_config(config, pm) -> None:
    """Ask every plugin (built-ins included) about the validated config; raise one ConfigError listing all problems.

    A section's own pydantic validators see only that section; this hook sees
    the whole resolved config, e.g. a plugin key that must stay below
    ``sampling.max_new_tokens``.
    """
    problems = []
    for impl in pm.hook.zoo_check_config.get_hookimpls():
        try:
            out = impl.function(config=config)
        except ConfigError as exc:
            out = [str(exc)]
        except Exception as exc:
            raise PluginHookError(impl.plugin_name, "zoo_check_config", exc) from exc
        if out is None:
            continue
        if isinstance(out, str) or not all(isinstance(p, str) for p in out):
            raise PluginHookError(
                impl.plugin_name, "zoo_check_config", TypeError(f"expected a list of strings or None, got {out!r}")
            )
        problems += [f"{p} (plugin {impl.plugin_name!r})" if not impl.plugin_name.startswith("builtin.") else p for p in out]
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(f"  {p}" for p in problems))
