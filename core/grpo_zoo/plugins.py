"""Plugin discovery and the per-run plugin manager.

Installed plugins are found through the entry-point group ``grpo_zoo`` but a
run activates only those it names; core's built-ins are registered last-in-line
so they answer every "first" hook that no active plugin claims.
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

import pluggy

from . import hookspecs

GROUP = "grpo_zoo"
BUILTIN_PREFIX = "builtin."
BUILTIN_MODULES = {
    "builtin.curriculum": "grpo_zoo.builtins.curriculum",
    "builtin.sampling": "grpo_zoo.builtins.sampling",
    "builtin.reward": "grpo_zoo.builtins.rewards",
    "builtin.advantage": "grpo_zoo.builtins.advantage",
    "builtin.loss": "grpo_zoo.builtins.loss",
    "builtin.cli": "grpo_zoo.builtins.cli",
    "builtin.weight_sync": "grpo_zoo.trainer.weight_sync",
}
# Hooks where every plugin is called per plugin (state, config), never merged.
PER_PLUGIN_HOOKS = {"zoo_config_model", "zoo_state_dict", "zoo_load_state_dict", "zoo_register_commands",
                    "zoo_accept_groups"}
# Hooks whose implementations core calls one by one (to attribute columns, state or errors).
DIRECT_HOOKS = PER_PLUGIN_HOOKS | {"zoo_reward", "zoo_check_config"}


class PluginError(Exception):
    """A plugin could not be found, loaded or combined with another."""


class HookConflictError(PluginError):
    pass


class PluginHookError(PluginError):
    """A hook implementation raised; names the plugin and the hook."""

    def __init__(self, plugin: str, hook: str, exc: BaseException):
        self.plugin, self.hook, self.original = plugin, hook, exc
        super().__init__(f"plugin {plugin!r} failed in hook {hook}: {type(exc).__name__}: {exc}")


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    builtin: bool
    module: str


def disabled_plugins() -> set[str]:
    raw = os.environ.get("GRPO_ZOO_DISABLE_PLUGINS", "")
    return {p.strip() for p in raw.split(",") if p.strip()}


def installed_entry_points() -> dict:
    """Entry points of the ``grpo_zoo`` group, minus GRPO_ZOO_DISABLE_PLUGINS (not loaded)."""
    blocked = disabled_plugins()
    return {ep.name: ep for ep in entry_points(group=GROUP) if ep.name not in blocked}


def installed_plugins() -> list[PluginInfo]:
    infos = [PluginInfo(n, "grpo-zoo", _core_version(), True, m) for n, m in BUILTIN_MODULES.items()]
    for name, ep in sorted(installed_entry_points().items()):
        dist = ep.dist
        infos.append(
            PluginInfo(name, dist.name if dist else "?", dist.version if dist else "?", False, ep.value)
        )
    return infos


def _core_version() -> str:
    from . import __version__

    return __version__


def load_plugin(name: str, entry_points_by_name: dict | None = None):
    if name.startswith(BUILTIN_PREFIX):
        if name not in BUILTIN_MODULES:
            raise PluginError(f"unknown built-in {name!r}; built-ins: {', '.join(BUILTIN_MODULES)}")
        return importlib.import_module(BUILTIN_MODULES[name])
    eps = installed_entry_points() if entry_points_by_name is None else entry_points_by_name
    if name not in eps:
        if name in disabled_plugins():
            raise PluginError(f"plugin {name!r} is named by the run but blocked by GRPO_ZOO_DISABLE_PLUGINS")
        known = ", ".join(sorted(eps)) or "none"
        raise PluginError(
            f"plugin {name!r} is not installed (installed plugins: {known}); "
            f"install it, e.g. pip install grpo-zoo-{name.replace('_', '-')}"
        )
    try:
        return eps[name].load()
    except Exception as exc:  # a broken plugin must name itself
        raise PluginError(f"plugin {name!r} failed to load from {eps[name].value}: {exc}") from exc


class _Manager(pluggy.PluginManager):
    """Skips hook implementations that the run's hook owners exclude."""

    def __init__(self, excluded: set[tuple[str, str]]):
        super().__init__(GROUP)
        self._excluded = excluded
        self._registering: str | None = None

    def parse_hookimpl_opts(self, plugin, name):
        if (self._registering, name) in self._excluded:
            return None
        return super().parse_hookimpl_opts(plugin, name)

    def register(self, plugin, name=None):
        self._registering = name
        try:
            return super().register(plugin, name)
        finally:
            self._registering = None


def _first_hooks() -> list[str]:
    return [
        n
        for n in dir(hookspecs)
        if n.startswith("zoo_") and getattr(getattr(hookspecs, n), "grpo_zoo_spec", {}).get("firstresult")
    ]


def implemented_hooks(plugin) -> list[str]:
    """Names of the hooks that ``plugin`` (module or object) implements."""
    if isinstance(plugin, type):
        plugin = plugin()
    out = []
    for attr in dir(plugin):
        if attr.startswith("zoo_") and hasattr(getattr(plugin, attr, None), "grpo_zoo_impl"):
            out.append(attr)
    return sorted(out)


def _is_wrapper(fn) -> bool:
    opts = getattr(fn, "grpo_zoo_impl", {})
    return bool(opts.get("wrapper") or opts.get("hookwrapper"))


def check_conflicts(plugins: dict[str, object], owners: dict[str, str]) -> set[tuple[str, str]]:
    """Return (plugin, hook) pairs to skip; raise when two plugins claim one first-answer hook."""
    excluded = set()
    for hook in _first_hooks():
        claimants = [
            n for n, p in plugins.items() if not _is_wrapper(getattr(p, hook, None)) and hook in implemented_hooks(p)
        ]
        owner = owners.get(hook) or owners.get(hook.removeprefix("zoo_"))
        if owner is not None and owner not in claimants:  # else a named owner would be silently ignored
            who = f"only {', '.join(map(repr, claimants))} implement it" if claimants else "no active plugin implements it"
            raise HookConflictError(f"hook_owners names {owner!r} for {hook}, but {who}")
        if len(claimants) < 2:
            continue
        if owner is None:
            a, b = claimants[:2]
            raise HookConflictError(
                f"plugins {a!r} and {b!r} both implement the single-answer hook {hook}; "
                f"choose one in the run config, e.g. [run.hook_owners] {hook.removeprefix('zoo_')} = {a!r}, "
                f"or drop one of them from `plugins`"
            )
        excluded |= {(n, hook) for n in claimants if n != owner}
    return excluded


def build_manager(names: list[str], owners: dict[str, str] | None = None, extra: dict | None = None) -> "_Manager":
    """A plugin manager with the built-ins plus the plugins a run names.

    ``extra`` maps names to plugin objects registered directly (tests, scripts).
    """
    owners = owners or {}
    eps = installed_entry_points()
    active: dict[str, object] = {}
    for name in names:
        if name in active:
            raise PluginError(f"plugin {name!r} is named twice in `plugins`")
        active[name] = (extra or {}).get(name) or load_plugin(name, eps)
    for name, obj in (extra or {}).items():
        active.setdefault(name, obj)
    # A plugin published as a class gets a fresh instance per run: its state
    # (statistics tables, optimizers) never leaks from one run into another.
    active = {n: (p() if isinstance(p, type) else p) for n, p in active.items()}
    unknown = {h for h in owners if ("zoo_" + h.removeprefix("zoo_")) not in _first_hooks()}
    if unknown:
        raise PluginError(f"run.hook_owners names unknown hook(s): {', '.join(sorted(unknown))}")
    for name, obj in active.items():
        for hook in DIRECT_HOOKS:
            if _is_wrapper(getattr(obj, hook, None)):
                raise PluginError(f"plugin {name!r}: {hook} cannot be a wrapper (core calls each implementation directly)")
    excluded = check_conflicts(active, owners)
    pm = _Manager(excluded)
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_MODULES:
        pm.register(load_plugin(name), name)
    for name, obj in active.items():
        pm.register(obj, name)
    return pm


def plugin_version(pm: pluggy.PluginManager, name: str) -> str:
    if name.startswith(BUILTIN_PREFIX):
        return _core_version()
    for plugin, dist in pm.list_plugin_distinfo():
        if pm.get_name(plugin) == name:
            return dist.version
    ep = installed_entry_points().get(name)
    if ep is not None and ep.dist is not None:
        return ep.dist.version
    obj = pm.get_plugin(name)
    return getattr(obj, "__version__", None) or getattr(sys.modules.get(getattr(obj, "__module__", "")), "__version__", "local")


def culprit(pm: pluggy.PluginManager, hook: str, exc: BaseException) -> str:
    """Name of the plugin whose implementation of ``hook`` raised ``exc``.

    Walks the traceback from the innermost frame outwards and returns the first
    hook implementation found there.
    """
    impls = {impl.function.__code__: impl.plugin_name for impl in getattr(pm.hook, hook).get_hookimpls()}
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    for code in reversed(frames):
        if code in impls:
            return impls[code]
    return "?"

