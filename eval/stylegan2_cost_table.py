"""Cost of rosinality's config-f StyleGAN2 (Generator(size, 512, 8, channel_multiplier=2)) and of its
students under each MACs rule, beside the figures the published compressors report.

    python eval/stylegan2_cost_table.py            # writes eval/results/stylegan2_{256,1024}/cost.{md,json}

Shape-only models on the meta device (cost does not depend on weight values): seconds, no memory."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import torch

from gancompress.families.stylegan2.config import StyleGAN2Config
from gancompress.families.stylegan2.config import StyleGAN2DiscriminatorConfig
from gancompress.families.stylegan2.networks import StyleGAN2Discriminator, StyleGAN2Generator
from gancompress.metrics.cost import MACS_RULES, count_macs_by_rule, count_parameters
from gancompress.report import markdown_table

# What the papers print (params in M, MACs in G, the rule they count by).
PUBLISHED = {
    256: [("CAGAN / StyleKD / DCP teacher", 30.0, 45.1, "input_resolution"),
          ("CAGAN / StyleKD / DCP 11x student", 5.6, 4.1, "input_resolution"),
          ("StyleKD narrower student", 3.4, 2.7, "input_resolution")],
    1024: [("CAGAN / StyleKD / DCP teacher", 49.1, 74.3, "input_resolution"),
           ("CAGAN / StyleKD / DCP 11x student", 9.2, 7.0, "input_resolution"),
           ("Anycost GAN teacher", None, 144.0, "output_resolution"),
           ("MobileStyleGAN teacher (synthesis only)", 28.27, 143.15, "output_resolution")],
}


def ours(resolution: int) -> list[tuple[str, str, tuple[int, ...]]]:
    base = StyleGAN2Config.from_multiplier(resolution, 2)
    return [("teacher (config-f)", "", base.channels),
            ("kept ratio 0.3, ceil (CAGAN's rule)", "--channels " + ",".join(str(math.ceil(0.3 * c)) for c in base.channels),
             tuple(math.ceil(0.3 * c) for c in base.channels)),
            ("--width 0.3 (multiples of 8)", "--width 0.3", base.with_width(0.3).channels),
            ("kept ratio 0.24, ceil (StyleKD's MACs)", "--channels " + ",".join(str(math.ceil(0.24 * c)) for c in base.channels),
             tuple(math.ceil(0.24 * c) for c in base.channels))]


def cost_rows(resolution: int) -> list[dict]:
    rows = []
    for name, option, channels in ours(resolution):
        config = dataclasses.replace(StyleGAN2Config.from_multiplier(resolution, 2), channels=tuple(channels))
        with torch.device("meta"):
            generator = StyleGAN2Generator(config)
        rows.append({"model": name, "prune option": option, "channels": list(channels),
                     "params": count_parameters(generator), "params_synthesis": count_parameters(generator.synthesis),
                     "macs_by_rule": count_macs_by_rule(generator)})
    return rows


def write(resolution: int, out_dir: Path) -> None:
    rows = cost_rows(resolution)
    teacher = rows[0]["macs_by_rule"]["input_resolution"]
    with torch.device("meta"):  # the papers' 49.1 M at 1024 px is not generator + discriminator either
        discriminator = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig.for_generator(
            StyleGAN2Config.from_multiplier(resolution, 2)))
    d_params = count_parameters(discriminator)
    table = [[r["model"], f"`{r['prune option']}`" if r["prune option"] else "", f"{r['params'] / 1e6:.2f}",
              f"{r['params_synthesis'] / 1e6:.2f}"] +
             [f"{r['macs_by_rule'][rule] / 1e9:.2f}" for rule in ("input_resolution", "output_resolution", "torch_counter")] +
             [f"{teacher / r['macs_by_rule']['input_resolution']:.1f}x"] for r in rows]
    published = [[name, f"{p:.2f}" if p else "-", f"{m:.2f} G ({rule.replace('_', '-')} rule)"] for name, p, m, rule in PUBLISHED[resolution]]
    lines = [f"# Cost of config-f StyleGAN2 at {resolution} px and its students", "",
             "Command: `python eval/stylegan2_cost_table.py` (shape-only models on the meta device).", "",
             *markdown_table(["model", "prune option", "params (M)", "synthesis params (M)", "G MACs, input-res rule",
                             "G MACs, output-res rule", "G MACs, torch counter", "MACs reduction (input-res)"], table), "",
             f"Config-f discriminator: {d_params / 1e6:.2f} M parameters.", "",
             "Published figures:", "", *markdown_table(["model", "params (M)", "MACs"], published), "",
             "Rules (gancompress/metrics/cost.py):", ""] + [f"- {k}: {v}" for k, v in MACS_RULES.items()]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cost.md").write_text("\n".join(lines) + "\n")
    (out_dir / "cost.json").write_text(json.dumps({"resolution": resolution, "rules": MACS_RULES, "ours": rows, "discriminator_params": d_params,
                                                   "published": PUBLISHED[resolution]}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-root", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    for resolution in (256, 1024):
        write(resolution, args.out_root / f"stylegan2_{resolution}")
        print((args.out_root / f"stylegan2_{resolution}" / "cost.md").read_text())


if __name__ == "__main__":
    main()
