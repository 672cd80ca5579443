"""Built-in sub-commands registered through the same hook that plugins use."""
from ..hookspecs import hookimpl


def _plot(args) -> int:
    from ..trainer.rundir import plot_run

    for path in plot_run(args.run_dir):
        print(path)
    return 0


@hookimpl
def zoo_register_commands(subparsers):
    p = subparsers.add_parser("plot", help="(re)draw a run folder's plots")
    p.add_argument("run_dir")
    p.set_defaults(func=_plot)
