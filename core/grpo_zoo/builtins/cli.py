"""Built-in sub-commands (plot, new-plugin, registry), registered through the same hook plugins use."""
from ..hookspecs import hookimpl


def _plot(args) -> int:
    from ..trainer.rundir import plot_run

    for path in plot_run(args.run_dir):
        print(path)
    from ..evaluation import plot_eval

    for path in plot_eval(args.run_dir):  # plots/eval.png when the run has eval.jsonl
        print(path)
    return 0


def _new_plugin(args) -> int:
    from ..scaffold import scaffold

    root = scaffold(args.name, args.dir, args.hooks)
    # the package's test extra brings pytest (core does not depend on it)
    print(f"created {root}\nnext: pip install -e \"{root}[test]\" && pytest {root / 'tests'}")
    return 0


def _catalog(args):
    """The catalog, or None after printing why it cannot be read (one line per problem, no traceback)."""
    import sys

    from ..registry import RegistryError, load_catalog

    try:
        return load_catalog(args.root)
    except (RegistryError, FileNotFoundError) as exc:
        print(f"grpo-zoo registry: {exc}", file=sys.stderr)
        return None


def _registry_list(args) -> int:
    entries = _catalog(args)
    if entries is None:
        return 1
    for e in entries:
        papers = "; ".join(f"{p.title} (arXiv {p.arxiv})" if p.arxiv else p.title for p in e.papers)
        print(f"{e.name:<20} {e.distribution:<28} {e.kind:<11} {e.summary}")
        if papers:
            print(f"{'':<20} paper: {papers}")
    return 0


def _registry_check(args) -> int:
    from ..contract import ContractError, check_plugin
    from ..plugins import PluginError, _core_version, installed_entry_points, load_plugin
    from ..registry import installed_problems

    entries = _catalog(args)
    if entries is None:
        return 1
    eps = installed_entry_points()
    installed = set(eps)
    problems = []
    for e in entries:
        if e.kind != "builtin" and e.name not in installed:
            continue
        dist = "grpo-zoo" if e.kind == "builtin" else (eps[e.name].dist.name if eps[e.name].dist else None)
        problems += [f"{e.name}: {p}" for p in installed_problems(e, dist, _core_version())]
        try:
            hooks = check_plugin(load_plugin(e.name))
        except (ContractError, PluginError) as exc:
            problems.append(f"{e.name}: {exc}")
            continue
        if sorted(hooks) != e.hooks:
            problems.append(f"{e.name}: catalog lists hooks {e.hooks} but the plugin implements {sorted(hooks)}")
    print(f"{len(entries)} catalog entries valid; {len(problems)} problem(s) with installed plugins")
    for p in problems:
        print(f"  {p}")
    return 1 if problems else 0


@hookimpl
def zoo_register_commands(subparsers):
    p = subparsers.add_parser("plot", help="(re)draw a run folder's plots")
    p.add_argument("run_dir")
    p.set_defaults(func=_plot)

    p = subparsers.add_parser("new-plugin", help="scaffold a publishable plugin package")
    p.add_argument("name", help="plugin (entry point) name, e.g. length_penalty")
    p.add_argument("--hooks", default="", help="comma list of families or hooks, e.g. advantage,reward")
    p.add_argument("--dir", default=".", help="where to create grpo-zoo-NAME/")
    p.set_defaults(func=_new_plugin)

    p = subparsers.add_parser("registry", help="the plugin catalog")
    sub = p.add_subparsers(dest="registry_command", required=True)
    for name, fn, text in (("list", _registry_list, "print the catalog"), ("check", _registry_check, "validate it")):
        q = sub.add_parser(name, help=text)
        q.add_argument("--root", default=None, help="catalog folder (default: $GRPO_ZOO_REGISTRY, else the "
                       "registry/plugins of the checkout grpo-zoo runs from, else ./registry/plugins)")
        q.set_defaults(func=fn)
