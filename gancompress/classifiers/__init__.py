"""Classifier distillation with GANs: teacher and student classifiers (networks.py), their losses
(losses.py: soft labels, logit matching, adversarial, DFAD/DAFL, PGD), transfer sets (transfer.py:
real data, a generator's images, data-free), the training loop (training.py), evaluation
(evaluation.py) and the `gancompress kd` run (runs.py). docs/classifier-kd.md."""
