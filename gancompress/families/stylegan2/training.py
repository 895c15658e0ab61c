"""StyleGAN2's training terms beyond the generic trainer's: the path length regulariser (its own
lazy generator phase, with a running mean kept in the checkpoint) and StyleKD's latent-direction
relation loss (a generator term while distilling). Style mixing is an input (`style_mixing_inputs`)
and the mapping-only initialisation is `copy_mapping`, both in the family class."""

from __future__ import annotations

import torch

from gancompress.distillation.distributed import mean_over_ranks
from gancompress.distillation.losses import latent_direction_relation, path_length_penalty


def relation_loss(trainer, z: torch.Tensor, step: int) -> dict:
    """Teacher and student on [w, w + offset] with shared offsets and noise; relations on the two
    lowest-resolution blocks, where StyleKD applies them."""
    G, config = trainer.G, trainer.config
    gen, batch = trainer.rng(step, "relation"), trainer.local_batch  # drawn for the whole batch (trainer.rows)
    direction = torch.randn(batch, G.config.w_dim, generator=gen)
    offset = direction / direction.norm(dim=1, keepdim=True) * torch.randn(batch, 1, generator=gen)
    offset = trainer.rows(offset * config.relation_strength).to(trainer.device)[:, None]
    noise = [torch.cat([n, n]) for n in trainer.rows(G.make_noise(batch, gen, trainer.device))]
    feats = []
    for net in (G, trainer.teacher):
        with torch.set_grad_enabled(net is G):
            ws = net.ws(z)
            feats.append(net(None, return_features=True, ws=torch.cat([ws, ws + offset]), noise=noise)[1])
    names = G.config.block_names[:2]
    return latent_direction_relation(feats[0], feats[1], names, z.shape[0], config.relation)


def path_length_step(trainer, step: int) -> dict:
    """One lazy path length step of the student (every `pl_interval` steps), updating the running mean."""
    G, config = trainer.G, trainer.config

    def losses():  # per micro-batch; the running mean moves after each, as NVlabs' does per GPU round
        z = trainer.latents(step, "pl")
        gen, batch = trainer.rng(step, "pl-noise"), trainer.local_batch
        noise = trainer.rows(G.make_noise(batch, gen, trainer.device))
        probe = trainer.rows(torch.randn(batch, G.out_channels, G.resolution, G.resolution, generator=gen))
        terms, pl_mean = path_length_penalty(G, z, noise, probe.to(trainer.device), trainer.extra_state["pl_mean"],
                                             config.pl_weight, config.pl_interval)
        trainer.extra_state["pl_mean"] = mean_over_ranks(pl_mean, trainer.rank)  # one running mean for all ranks
        return terms
    return trainer.apply(trainer.opt_g, trainer.g_params, losses)
