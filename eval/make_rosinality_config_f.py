"""A rosinality config-f StyleGAN2 checkpoint (`Generator(size, 512, 8, channel_multiplier=2)`) of
random weights, saved as rosinality saves it ({'g_ema': state_dict, 'latent_avg': ...}), for cost,
latency and import benchmarks: no offline source carries a trained 256 px StyleGAN2, and latency
does not depend on weight values.

    python eval/make_rosinality_config_f.py --size 256 --out teacher256.pt"""

from __future__ import annotations

import argparse

import torch

from gancompress.families.stylegan2.config import StyleGAN2Config
from gancompress.families.stylegan2.importers.rosinality import rosinality_state
from gancompress.families.stylegan2.networks import StyleGAN2Generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    generator = StyleGAN2Generator(StyleGAN2Config.from_multiplier(args.size, 2)).eval()
    with torch.no_grad():  # trained networks have non-zero noise strengths and biases; random ones should too
        for name, p in generator.named_parameters():
            if name.endswith(("noise_strength", ".bias")) and "mapping" not in name:
                p.normal_(0, 0.1)
        latent_avg = generator.mapping(torch.randn(4096, generator.z_dim)).mean(0)
    torch.save({"g_ema": rosinality_state(generator), "latent_avg": latent_avg}, args.out)
    print(f"{args.out}: config-f {args.size} px, random weights (seed {args.seed})")


if __name__ == "__main__":
    main()
