"""Command line: ``python -m widelimits demo`` and ``python -m widelimits reproduce <id>``.

``demo`` runs the kernel gallery at the "quick" size (a minute on two CPU cores) and prints the
paths of the figures it wrote; ``reproduce <id>`` runs one figure of ``widelimits.reproduce``
(``list`` shows the ids). A figure module with a ``parse_options(argv) -> dict`` function takes
options of its own after the common ones (e.g. ``reproduce cnn_kernels --data FILE.npz --zca``),
passed to its ``run`` as keyword arguments.
"""

from __future__ import annotations

import argparse
import sys
import time

DEMO_ID = "kernel_gallery"


def _add_common(parser, default_size):
    parser.add_argument("--out", default="figures",
                        help="folder for the figures and data (default: %(default)s)")
    group = parser.add_mutually_exclusive_group()
    for size, what in (("full", "the full figure"), ("quick", "a smaller run (about a minute)"),
                       ("smoke", "a tiny run (seconds), for tests")):
        group.add_argument(f"--{size}", dest="size", action="store_const", const=size,
                           help=what)
    parser.set_defaults(size=default_size)


def _parser():
    parser = argparse.ArgumentParser(
        prog="widelimits",
        description="widelimits: infinite-width NNGP/NTK kernels in JAX. Reproduce figures.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,reproduce,list}")
    demo = sub.add_parser("demo", help=f"run the {DEMO_ID} figure at the quick size")
    _add_common(demo, "quick")
    rep = sub.add_parser("reproduce", help="reproduce one figure by id",
                         epilog="Some figures take options of their own after these: "
                                "cnn_kernels --data FILE.npz [--zca [REG]] [--flip].")
    rep.add_argument("id", help="figure id (see `python -m widelimits list`)")
    _add_common(rep, "full")
    sub.add_parser("list", help="list the figure ids")
    return parser, {"demo": demo, "reproduce": rep}


def _run(figure_id, size, out, options=None):
    from widelimits import reproduce

    module = reproduce.get(figure_id)
    start = time.perf_counter()
    result = module.run(size=size, out=out, **(options or {}))
    paths = module.plot(result, out)
    print(f"{figure_id} ({size}) done in {time.perf_counter() - start:.1f} s; wrote:",
          file=sys.stderr)
    for path in paths:
        print(path)
    return paths


def main(argv=None) -> int:
    """Entry point of ``python -m widelimits`` and the ``widelimits`` script."""
    parser, subparsers = _parser()
    args, extra = parser.parse_known_args(argv)
    from widelimits import reproduce

    if args.command == "list":
        for figure_id, module in sorted(reproduce.REGISTRY.items()):
            doc = (module.__doc__ or "").strip().splitlines()
            print(f"{figure_id}: {doc[0] if doc else ''}")
        return 0
    figure_id = DEMO_ID if args.command == "demo" else args.id
    if figure_id not in reproduce.REGISTRY:
        subparsers[args.command].error(f"unknown figure id {figure_id!r}; known ids: "
                     f"{', '.join(sorted(reproduce.REGISTRY))}")
    parse_options = getattr(reproduce.REGISTRY[figure_id], "parse_options", None)
    if extra and (args.command != "reproduce" or parse_options is None):
        subparsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    options = parse_options(extra) if args.command == "reproduce" and parse_options else {}
    _run(figure_id, args.size, args.out, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
