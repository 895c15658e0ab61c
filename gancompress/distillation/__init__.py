"""Distillation: losses (output, feature, adversarial, regularisers) and one trainer."""
