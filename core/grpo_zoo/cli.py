"""The ``grpo-zoo`` command line."""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys

from .config import ConfigError
from .errors import RunError
from .plugins import PluginError, implemented_hooks, installed_entry_points, installed_plugins, load_plugin


def cmd_plugins(args) -> int:
    rows = []
    for info in installed_plugins():
        try:
            hooks = implemented_hooks(load_plugin(info.name))
        except PluginError as exc:
            hooks = [f"<failed to load: {exc}>"]
        rows.append({**info.__dict__, "hooks": hooks})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        kind = "built-in" if r["builtin"] else f"{r['distribution']} {r['version']}"
        print(f"{r['name']:<{width}}  {kind}\n{'':<{width}}  hooks: {', '.join(r['hooks'])}")
    return 0


def _source(args):
    """The config path, or its contents minus the plugins named by --without."""
    if not getattr(args, "without", None):
        return args.config
    from .config import drop_plugins, read_toml

    return drop_plugins(read_toml(args.config), args.without)


def cmd_config_show(args) -> int:
    from .context import load_config

    config, _ = load_config(_source(args), args.set)
    text = json.dumps(config.model_dump(mode="json"), indent=2)
    print(text)
    return 0


def cmd_train(args) -> int:
    from .trainer.loop import train

    if not args.config and not args.resume:
        raise ConfigError("train needs a CONFIG file or --resume RUN_DIR")
    source = _source(args) if args.config else None
    if args.overwrite and (args.resume or not args.out):
        raise ConfigError("--overwrite goes with --out RUN_DIR (a new run replacing the one there)")
    metrics, run_dir = train(source, out=args.out, overrides=args.set, resume=args.resume, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) != 0:  # one summary per run: distributed ranks leave it to rank 0
        return 0
    first = _first_reward(run_dir)
    print(f"\nrun folder: {run_dir}")
    last = metrics.get("reward/mean")
    last = float("nan") if last is None else last  # null in metrics.jsonl: a non-finite value
    print(f"reward/mean: {first:.4f} at the first step -> {last:.4f} at the last")
    from .evaluation import summary_line

    if line := summary_line(run_dir):
        print(line)
    print(f"plots: {run_dir / 'plots'}  checkpoint: {run_dir / 'checkpoints'}")
    return 0


def _first_reward(run_dir) -> float:
    from .trainer.rundir import read_jsonl

    rows = read_jsonl(run_dir / "metrics.jsonl")
    first = rows[0].get("reward/mean") if rows else None
    return float("nan") if first is None else first


def build_parser(with_plugins: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo-zoo", description="GRPO-family RL for language models")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="list installed plugins and their hooks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("config", help="inspect a run config")
    csub = p.add_subparsers(dest="config_command", required=True)
    s = csub.add_parser("show", help="print the fully resolved config with defaults")
    s.add_argument("config")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--without", action="append", default=[], metavar="PLUGIN", help="drop a plugin and its section")
    s.set_defaults(func=cmd_config_show)

    p = sub.add_parser("train", help="train a policy from a TOML config")
    p.add_argument("config", nargs="?")
    p.add_argument("--out", help="run folder (default: runs/<timestamp>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument(
        "--without", action="append", default=[], metavar="PLUGIN", help="drop a plugin and its section (baselines)"
    )
    p.add_argument("--overwrite", action="store_true", help="delete the run already in --out and start a new one")
    p.set_defaults(func=cmd_train)

    from . import compare, evaluation

    evaluation.register(sub)
    compare.register(sub)
    _plugin_commands("builtin.cli", sub)
    if with_plugins:
        for name in installed_entry_points():
            _plugin_commands(name, sub)
    return parser


def _plugin_commands(name: str, sub) -> None:
    try:
        plugin = load_plugin(name)
    except PluginError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return
    if isinstance(plugin, type):  # a class plugin: its hooks are methods of an instance
        plugin = plugin()
    fn = getattr(plugin, "zoo_register_commands", None)
    if fn is not None:
        try:
            fn(subparsers=sub)
        except Exception as exc:  # one broken plugin must not take the whole CLI down
            print(f"warning: plugin {name!r} failed in hook zoo_register_commands: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Core commands never import installed plugins: a plugin a run does not name must not
    # run even its module-level code (reproducibility).
    core = {"plugins", "config", "train", "plot", "new-plugin", "registry"}
    args = build_parser(with_plugins=not (argv and argv[0] in core)).parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, PluginError, FileNotFoundError) as exc:
        if _debug():
            raise
        print(f"grpo-zoo: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        message = anticipated(exc)
        if message is None or _debug():
            raise
        print(f"grpo-zoo: error: {message}", file=sys.stderr)
        return 2


def _debug() -> bool:
    """GRPO_ZOO_DEBUG=1: anticipated errors show their traceback too."""
    return os.environ.get("GRPO_ZOO_DEBUG", "") not in ("", "0")


_OS_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT}


def anticipated(exc: BaseException) -> str | None:
    """The one-line message of a failure a user can fix without a traceback, or None for a bug."""
    if isinstance(exc, RunError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in _OS_ERRNOS:
        where = exc.filename or "a file of the run"
        return f"{exc.strerror or exc}: {where}"
    return None


if __name__ == "__main__":
    sys.exit(main())
