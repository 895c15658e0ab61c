"""A generator + a reference -> a metrics record that carries its protocol.

References:
  teacher:NAME|PATH   data-free: FID/KID against fresh samples of that teacher (latents drawn
                      from `ref_seed`, never the generator's), plus LPIPS between the generator
                      and the teacher on the generator's own latents
  mnist[:SPLIT], fashion-mnist[:SPLIT]   a registered dataset split (default: test)
  PATH | folder:PATH  a folder or tar of images
  FILE.npz            precomputed statistics (`mu`, `sigma`: pytorch-fid's, clean-fid's or our
                      `--save-stats` layout), the way published FFHQ statistics are distributed:
                      FID only (KID needs features, LPIPS a teacher); what the file does not say
                      about how it was made is recorded as unknown

Generators are sampled in memory, in batches. Reference features are cached under a key that
hashes everything they depend on; a later evaluation against the same reference reuses them.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch_fidelity
from safetensors import SafetensorError
from safetensors.torch import load_file
from tqdm import tqdm

import gancompress
from gancompress import assets
from gancompress.data import DATASETS, ImageFiles, load_dataset
from gancompress.errors import GancompressError
from gancompress.families import family_of
from gancompress.io import read_metadata, save_tensors, sha256_file
from gancompress.metrics import fid as fid_metrics
from gancompress.metrics.cost import MACS_RULE, MACS_RULES, count_macs_by_rule, count_parameters
from gancompress.metrics.images import GRAYSCALE_RULE, TO_UINT8_RULE, to_uint8
from gancompress.metrics.latency import measure_latency
from gancompress.metrics.lpips import RESIZE_RULE as LPIPS_RESIZE_RULE
from gancompress.metrics.lpips import load_lpips, lpips_distance
from gancompress.teachers import resolve_generator

REFERENCE_CACHE_VERSION = 2  # 2: entries record the sha256 of their features
DEFAULT_REF_SEED = 1_000_003
LATENCY_BATCHES = (1, 16)


class EvaluationError(GancompressError, ValueError):
    pass


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _noise_rng(seed: int, index: int) -> torch.Generator:
    # torch's CPU generator keeps only 32 bits of a seed: hash (seed, index) down to 32 bits.
    digest = hashlib.sha256(f"noise/{seed}/{index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:4], "little"))


def generate(generator, z: torch.Tensor, device, noise_seed: int = 0, first_index: int = 0) -> torch.Tensor:
    """generator(z). Generators with per-layer noise (StyleGAN2) get noise drawn per image from
    (noise_seed, image index): independent of the batch size, and the same for a teacher and its
    students, so evaluations repeat exactly and LPIPS compares like with like."""
    z = z.to(device)
    family = family_of(generator)
    if not family.has_shared_inputs:
        return generator(z)
    rngs = [_noise_rng(noise_seed, first_index + i) for i in range(len(z))]
    return generator(z, **family.shared_inputs_per_image(generator, rngs, device))


@torch.inference_mode()
def sample_images(generator, z: torch.Tensor, batch_size: int, device, noise_seed: int = 0) -> Iterator[tuple[slice, torch.Tensor]]:
    """(index slice, images in [-1, 1] on the CPU) for consecutive batches of latents `z`."""
    generator.eval()
    for start in range(0, len(z), batch_size):
        stop = min(start + batch_size, len(z))
        images = generate(generator, z[start:stop], device, noise_seed, start).float().cpu()
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        if bad:  # to_uint8 would turn NaN into plausible pixels and FID into a plausible number
            raise EvaluationError(f"the generator made {bad} images with non-finite values (NaN or inf) among images "
                                  f"{start}-{stop - 1}; its weights are broken (a diverged training run?): retrain it")
        yield slice(start, stop), images


def latents(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """The same latents for a given seed whatever the batch size or device: drawn once on the CPU."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


@dataclass
class Reference:
    """What generated images are compared with. `images(n, seed)` yields uint8 batches."""

    kind: str  # teacher | dataset | folder | statistics
    label: str
    identity: dict
    size: int | None  # number of available images (None: unlimited, a teacher)
    loader: Callable[[int, int, int], Iterator[torch.Tensor]] = field(repr=False)
    teacher: torch.nn.Module | None = field(default=None, repr=False)
    statistics: dict | None = field(default=None, repr=False)  # kind statistics: {"mu", "sigma"} float64


def generator_reference(generator, identity: dict, device) -> Reference:
    """A generator as a source of images: latents from the seed the caller passes."""

    def generated_images(n, seed, batch_size):
        z = latents(n, generator.z_dim, seed)
        for _, images in sample_images(generator, z, batch_size, device, noise_seed=seed):
            yield to_uint8(images)

    return Reference("teacher", f"teacher:{identity['name']}", identity, None, generated_images, generator)


def parse_reference(spec: str, device, resolution: int, channels: int) -> Reference:
    if spec.startswith("teacher:"):
        return generator_reference(*resolve_generator(spec[len("teacher:"):], device), device)

    name, _, split = spec.partition(":")
    if name in DATASETS:
        split = split or "test"
        images = load_dataset(name, split)
        asset_file = assets.resolve(DATASETS[name][0])
        identity = {"dataset": name, "split": split, "size": len(images), "file_sha256": sha256_file(asset_file)}

        def dataset_images(n, seed, batch_size):
            idx = _subset(len(images), n, seed)
            for start in range(0, n, batch_size):
                yield images[idx[start:start + batch_size]]

        return Reference("dataset", f"{name}:{split}", identity, len(images), dataset_images)

    path = Path(spec[len("folder:"):] if spec.startswith("folder:") else spec).expanduser()
    if path.suffix == ".npz" and path.is_file():
        return statistics_reference(path)
    if not path.exists():
        raise EvaluationError(
            f"reference {spec!r}: not teacher:NAME, a dataset ({', '.join(DATASETS)}), an existing folder/tar "
            "or a statistics .npz"
        )
    files = ImageFiles.open(path)
    identity = {"path": str(path.resolve()), "images": len(files.names), "listing_sha256": files.fingerprint(),
                "resize": f"each image converted to {'L' if channels == 1 else 'RGB'} and, if not "
                          f"{resolution}x{resolution}, resized to it with PIL bicubic"}

    def folder_images(n, seed, batch_size):
        idx = _subset(len(files.names), n, seed)
        for start in range(0, n, batch_size):
            yield files.load(idx[start:start + batch_size].tolist(), channels, resolution)

    return Reference("folder", f"folder:{path}", identity, len(files.names), folder_images)


STATISTICS_KID_UNAVAILABLE = ("KID is unavailable against precomputed statistics: it needs the reference's "
                              "features, and the file holds only their mean and covariance")
UNKNOWN = "unknown: the statistics file does not record it"


def load_statistics(path: str | Path) -> tuple[dict, dict | None]:
    """({"mu" (2048,), "sigma" (2048, 2048)} as float64, the record our `--save-stats` embeds or None)
    from a .npz, checked: the arrays, their shapes, finite values and a symmetric covariance."""
    import zipfile

    import numpy as np

    path = Path(path)
    layout = "a statistics .npz holds mu (2048,) and sigma (2048, 2048), as pytorch-fid, clean-fid and `--save-stats` write"
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = sorted({"mu", "sigma"} - set(data.files))
            if missing:
                raise EvaluationError(f"{path} has no {' or '.join(missing)} array ({', '.join(data.files) or 'empty'}); {layout}")
            mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
            record = json.loads(str(data["record"])) if "record" in data.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise EvaluationError(f"{path} is not a readable .npz ({type(err).__name__}: {str(err)[:120]}); {layout}") from None
    if mu.shape != (2048,) or sigma.shape != (2048, 2048):
        raise EvaluationError(f"{path}: mu {mu.shape} and sigma {sigma.shape} are not Inception pool3 statistics; {layout}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise EvaluationError(f"{path}: mu or sigma holds non-finite values (NaN or inf); recompute the statistics")
    if np.abs(sigma - sigma.T).max() > 1e-6 * max(np.abs(sigma).max(), 1e-12):
        raise EvaluationError(f"{path}: sigma is not symmetric, so it is not a covariance; recompute the statistics")
    return {"mu": mu, "sigma": sigma}, record if isinstance(record, dict) else None


def statistics_reference(path: Path) -> Reference:
    """Precomputed mu/sigma as a reference (FID only). When the file is ours, its record says how it
    was made; a foreign file's sample count, images, weights and resize are unknown."""
    stats, record = load_statistics(path)
    made = (record or {}).get("protocol", {})
    identity = {"path": str(path.resolve()), "sha256": sha256_file(path), "layout": "npz mu/sigma",
                "written_by": "gancompress --save-stats" if record else UNKNOWN,
                "n": record.get("n") if record else UNKNOWN,
                "source": record.get("generator") if record else UNKNOWN,
                **{key: made.get(key, UNKNOWN) for key in ("feature_extractor", "feature_weights", "resize", "to_uint8")}}
    return Reference("statistics", f"statistics:{path}", identity, None, None, statistics=stats)


def same_feature_protocol(reference: Reference, resize_rule: str) -> bool | str:
    """Whether a statistics file was made with our features, weights and this resize: True, False or unknown."""
    ident = reference.identity
    if ident.get("written_by") == UNKNOWN:
        return "unknown"
    return all(ident.get(key) == value for key, value in protocol_features(resize_rule).items())


def protocol_features(resize_rule: str = fid_metrics.RESIZE_RULE) -> dict:
    """The protocol fields a statistics file must share with an evaluation for their FID to compare."""
    return {"feature_extractor": fid_metrics.FEATURE_EXTRACTOR_ID, "feature_weights": assets.provenance("fid-inception"),
            "resize": resize_rule, "to_uint8": TO_UINT8_RULE}


def _subset(size: int, n: int, seed: int) -> torch.Tensor:
    """A seeded random subset in ascending order (folders are often sorted by class)."""
    if n > size:
        raise EvaluationError(f"asked for {n} reference images but the reference has only {size}; lower --n-ref")
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def _features(batches: Iterator[torch.Tensor], extractor, total: int, desc: str, progress: bool) -> torch.Tensor:
    feats = []
    with tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for batch in batches:
            feats.append(extractor(batch))
            bar.update(len(batch))
    return torch.cat(feats)


def reference_cache_key(reference: Reference, n_ref: int, ref_seed: int, device: str,
                        backend: str = "torch", resize_rule: str = fid_metrics.RESIZE_RULE) -> tuple[str, dict]:
    weights = assets.provenance("fid-inception")
    descriptor = {
        "version": REFERENCE_CACHE_VERSION,
        "reference": reference.label,
        "identity": {k: v for k, v in reference.identity.items() if k != "file"},
        "n": n_ref,
        "seed": ref_seed,
        "feature_extractor": fid_metrics.FEATURE_EXTRACTOR_ID,
        "feature_weights_sha256": weights["sha256"],
        "resize": resize_rule,
        "to_uint8": TO_UINT8_RULE,
        "grayscale": GRAYSCALE_RULE,
        "device_type": torch.device(device).type,
        "feature_backend": backend,  # torch or onnxruntime: equal to 1e-4, but never mixed in one FID
    }
    key = hashlib.sha256(json.dumps(descriptor, sort_keys=True).encode()).hexdigest()[:32]
    return key, descriptor


def cached_features(reference, n_ref, ref_seed, extractor, batch_size, device, use_cache, progress, log):
    key, descriptor = reference_cache_key(reference, n_ref, ref_seed, device, extractor.backend, extractor.resize_rule)
    path = assets.cache_dir() / "features" / f"{key}.safetensors"
    if use_cache and path.is_file():
        log(f"features of {reference.label} (n = {n_ref}, seed {ref_seed}): reused from cache {path}")
        return load_cached_features(path, n_ref), {"cache": "reused", "key": key, "file": str(path)}
    batches = reference.loader(n_ref, ref_seed, batch_size)
    feats = _features(batches, extractor, n_ref, f"features {reference.label}", progress)
    if use_cache:
        save_tensors(path, {"features": feats}, {"descriptor": descriptor, "features_sha256": _tensor_sha256(feats)})
        log(f"features of {reference.label} (n = {n_ref}, seed {ref_seed}): computed and cached as {path}")
    return feats, {"cache": "computed" + ("" if use_cache else " (cache off)"), "key": key, "file": str(path)}


def _tensor_sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def load_cached_features(path: Path, n: int) -> torch.Tensor:
    """Cached features, once they are shown whole: readable, (n, 2048) float32, finite, and equal to
    the sha256 recorded when they were written. Otherwise one error naming the file and the fix."""
    def damaged(why: str) -> EvaluationError:
        return EvaluationError(f"cached features {path} are damaged ({why}); delete the file (it is recomputed on "
                               "the next run) or evaluate with --no-cache")

    try:
        recorded = read_metadata(path).get("features_sha256")
        feats = load_file(str(path))["features"]
    except (GancompressError, KeyError, OSError, SafetensorError) as err:
        reason = (str(err).replace(f"{path}: ", "").strip().splitlines() or ["unreadable"])[0][:160]
        raise damaged(f"{type(err).__name__}: {reason}") from None
    if feats.dtype != torch.float32 or tuple(feats.shape) != (n, 2048):
        raise damaged(f"{feats.dtype} {tuple(feats.shape)}, expected float32 ({n}, 2048)")
    if recorded is None or _tensor_sha256(feats) != recorded:
        raise damaged("their sha256 differs from the one recorded when they were written" if recorded
                      else "no sha256 recorded")
    return feats


def in_memory_identity(generator: torch.nn.Module) -> dict:
    """What a record (and the feature cache key) says about a generator passed as an object: its
    family and config, and a sha256 of its tensors (so a changed network is never a cache hit)."""
    digest = hashlib.sha256()
    for key, tensor in sorted(generator.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    config = getattr(generator, "config", None)
    family = getattr(config, "family", type(generator).__name__)
    return {"name": f"{family} generator (in memory)", "file": None, "sha256": digest.hexdigest(),
            "config": config.to_dict() if config is not None else None}


def _generator_and_identity(generator, device, identity: dict | None = None) -> tuple[torch.nn.Module, dict]:
    if isinstance(generator, torch.nn.Module):
        return generator.to(device), identity or in_memory_identity(generator)
    if isinstance(generator, (str, Path)):
        return resolve_generator(str(generator), device)
    raise EvaluationError(f"a generator is a registered name, a checkpoint path or an nn.Module, not a "
                          f"{type(generator).__name__}")


def _check_budget(n: int, n_ref: int | None, batch_size: int) -> int:
    """The reference sample count (default: n), after checking the budget."""
    if n < 2:
        raise EvaluationError(f"--n must be at least 2 (FID needs a covariance), got {n}")
    n_ref = n if n_ref is None else n_ref
    if n_ref < 2:
        raise EvaluationError(f"--n-ref must be at least 2 (FID needs a covariance), got {n_ref}")
    if batch_size < 1:
        raise EvaluationError(f"--batch-size must be at least 1, got {batch_size}")
    return n_ref


def _lpips_record(generator, reference, n, seed, lpips_net, batch_size, device) -> dict:
    """LPIPS to the reference teacher on the generator's own latents (and noise), or why it is unavailable."""
    record = _lpips_unavailable(reference, generator)
    if record is None:
        record = lpips_to_teacher(generator, reference.teacher, latents(n, generator.z_dim, seed),
                                  load_lpips(lpips_net, device), batch_size, device, noise_seed=seed)
        record["net"] = lpips_net
    return record


def generator_cost(generator, latency: bool = True) -> dict:
    """Parameters, MACs per image (with the family's split) and, when asked, PyTorch latency."""
    by_rule = count_macs_by_rule(generator)
    cost = {"params": count_parameters(generator), "macs_per_image": by_rule["torch_counter"], "macs_rule": MACS_RULE,
            "macs_by_rule": by_rule, "macs_rules": MACS_RULES}
    cost.update(family_of(generator).cost_split(generator))
    if latency:
        cost["latency"] = [measure_latency(generator, b) for b in LATENCY_BATCHES]
    return cost


def evaluate(
    generator_spec,
    reference_spec: str,
    n: int = 2000,
    n_ref: int | None = None,
    seed: int = 0,
    ref_seed: int = DEFAULT_REF_SEED,
    batch_size: int = 50,
    device: str | None = None,
    lpips_net: str = "alex",
    latency: bool = True,
    use_cache: bool = True,
    progress: bool = True,
    inception_score: bool = False,
    log: Callable[[str], None] = print,
    identity: dict | None = None,
    save_stats: str | Path | None = None,
    resize: str = "torch-fidelity",
) -> dict:
    """Evaluate `generator_spec` (a registered name, a checkpoint path, or a generator nn.Module)
    against `reference_spec` (teacher:NAME|PATH, a dataset[:split], an image folder/tar, or a
    `Reference` already built, e.g. `generator_reference(teacher, ...)`): a record of FID, KID,
    LPIPS, cost and latency that carries its protocol. `identity`: how the record names a generator
    passed as an object (default: its family, config and a sha256 of its tensors). `save_stats`: a
    .npz for the generated features' mean and covariance (`mu`, `sigma`: pytorch-fid's and clean-fid's
    layout) with the record's protocol as `protocol` (JSON). `resize`: how images reach Inception's
    299x299, "torch-fidelity" (TF1.x bilinear inside its module) or "clean" (clean-fid's PIL bicubic),
    recorded in the protocol; features of the two are never mixed (the cache key holds the rule)."""
    if resize not in fid_metrics.RESIZES:
        raise EvaluationError(f"--resize must be one of {', '.join(fid_metrics.RESIZES)}, got {resize!r}")
    device = device or default_device()
    if save_stats is not None:
        from gancompress.io import check_writable

        check_writable(save_stats)
    n_ref_asked = n_ref
    n_ref = _check_budget(n, n_ref, batch_size)
    timings = {}
    t0 = time.perf_counter()
    generator, gen_identity = _generator_and_identity(generator_spec, device, identity)
    reference = reference_spec if isinstance(reference_spec, Reference) else \
        parse_reference(reference_spec, device, generator.resolution, generator.out_channels)
    if reference.kind == "teacher" and seed == ref_seed:
        raise EvaluationError("--seed equals --ref-seed: the teacher reference would reuse the generator's latents")
    if reference.kind == "statistics":
        if n_ref_asked is not None:
            raise EvaluationError("--n-ref does not apply to a statistics reference: its sample count is fixed in the file")
        n_ref = reference.identity["n"]
    extractor = fid_metrics.InceptionFeatures(device, resize=resize)
    timings["load_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if reference.kind == "statistics":
        ref_feats, ref_cache = None, {"cache": "not used: precomputed statistics"}
    else:
        ref_feats, ref_cache = cached_features(
            reference, n_ref, ref_seed, extractor, batch_size, device, use_cache, progress, log
        )
    timings["reference_features_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    # A generator's samples are as reusable as a reference's (compress and sweeps measure a student
    # against teacher samples and against data with the same latents): cache them the same way, under
    # a key that includes the checkpoint's sha256.
    cache_generator = use_cache
    gen_feats, gen_cache = cached_features(
        generator_reference(generator, gen_identity, device), n, seed, extractor, batch_size, device,
        cache_generator, progress, log if cache_generator else (lambda msg: None),
    )
    timings["generator_features_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    lpips_record = _lpips_record(generator, reference, n, seed, lpips_net, batch_size, device)
    timings["lpips_s"] = time.perf_counter() - t0

    if reference.kind == "statistics":
        fid = fid_metrics.fid_from_statistics(fid_metrics.statistics_of(gen_feats), reference.statistics)
        kid = {"available": False, "reason": STATISTICS_KID_UNAVAILABLE}
    else:
        fid = fid_metrics.fid_from_features(gen_feats, ref_feats)
        kid_mean, kid_std = fid_metrics.kid_from_features(gen_feats, ref_feats, seed=seed)
        kid = {"mean": kid_mean, "std": kid_std}
    values = {"FID": fid, "KID": kid.get("mean", 0.0), "LPIPS": lpips_record.get("mean", 0.0)}
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:  # never print a metric that is not a number
        raise EvaluationError(f"{', '.join(bad)} came out non-finite for {gen_identity['name']} against "
                              f"{reference.label}; no record was written")

    t0 = time.perf_counter()
    cost = generator_cost(generator, latency)
    timings["cost_s"] = time.perf_counter() - t0

    metrics = {"fid": fid, "kid": kid, "lpips": lpips_record}
    if inception_score:
        metrics["inception_score"] = {"available": False, "reason": fid_metrics.INCEPTION_SCORE_UNAVAILABLE}
    record_protocol = {**protocol(n, n_ref, seed, ref_seed, batch_size, device, reference,
                                  family_of(generator).has_shared_inputs, extractor.resize),
                       "feature_backend": extractor.description}
    if save_stats is not None:
        write_statistics(save_stats, gen_feats, {"generator": {k: gen_identity.get(k) for k in ("name", "sha256")},
                                                 "n": n, "seed": seed, "protocol": record_protocol})
    return {
        "generator": gen_identity,
        "reference": {"spec": reference_spec if isinstance(reference_spec, str) else reference.label,
                      "label": reference.label, "kind": reference.kind,
                      "identity": reference.identity, "features": ref_cache},
        "generator_features": gen_cache,
        "metrics": metrics,
        "cost": cost,
        "protocol": record_protocol,
        "timings": timings,
    }


class QualityMonitor:
    """FID/KID (and LPIPS to a teacher reference) of a generator during training, at a small n.

    The reference features are computed once (cached as `evaluate` caches them); each call samples the
    generator on the same n latents. FID at small n is biased upward (its expectation falls roughly
    as 1/n), so the monitor also measures the floor at this n, a teacher reference against fresh samples
    of itself, and says so: in-training numbers compare with each other and with that floor, not with
    the final evaluation at the preset's n."""

    def __init__(self, reference: Reference, n: int, device, lpips_model=None, seed: int = 0,
                 ref_seed: int = DEFAULT_REF_SEED, batch_size: int = 50, use_cache: bool = True,
                 log: Callable[[str], None] = print):
        self.reference, self.n, self.device, self.seed, self.batch_size = reference, n, device, seed, batch_size
        self.extractor = fid_metrics.InceptionFeatures(device)
        self.ref_feats, _ = cached_features(reference, n, ref_seed, self.extractor, batch_size, device, use_cache,
                                            False, log)
        self.lpips_model = lpips_model
        if reference.kind == "teacher" and lpips_model is None:
            self.lpips_model = load_lpips("alex", device)
        self.floor = None
        if reference.kind == "teacher":  # the teacher on the generators' latents against its reference samples
            teacher_feats, _ = cached_features(reference, n, seed, self.extractor, batch_size, device, use_cache, False, log)
            self.floor = fid_metrics.fid_from_features(teacher_feats, self.ref_feats)
        self.description = (
            f"in-training FID/KID: n = {n} samples of the EMA (latents from seed {seed}) against {n} of "
            f"{reference.label} (seed {ref_seed}), {self.extractor.description}"
            + (f"; LPIPS (AlexNet) to the teacher on the same latents. At n = {n} FID is biased upward: the teacher "
               f"against itself scores {self.floor:.2f} here, so compare these values with each other and with "
               "that floor; the final evaluation runs at the preset's n" if self.floor is not None else
               f". At n = {n} FID is biased upward (roughly as 1/n): compare these values with each other only; "
               "the final evaluation runs at the preset's n"))

    def __call__(self, generator) -> dict:
        z = latents(self.n, generator.z_dim, self.seed)
        feats = _features((to_uint8(images) for _, images in
                           sample_images(generator, z, self.batch_size, self.device, noise_seed=self.seed)),
                          self.extractor, self.n, "eval", False)
        fid = fid_metrics.fid_from_features(feats, self.ref_feats)
        kid, _ = fid_metrics.kid_from_features(feats, self.ref_feats, seed=self.seed)
        metrics = {"fid": fid, "kid": kid, "n": self.n}
        if self.floor is not None:
            metrics["fid_floor"] = self.floor
            if _lpips_unavailable(self.reference, generator) is None:
                metrics["lpips"] = lpips_to_teacher(generator, self.reference.teacher, z, self.lpips_model,
                                                    self.batch_size, self.device, noise_seed=self.seed)["mean"]
        bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise EvaluationError(f"in-training {', '.join(bad)} came out non-finite; the student's weights are "
                                  "broken (a diverging run?): lower the learning rates and start a new run")
        return metrics


def write_statistics(path: str | Path, features: torch.Tensor, about: dict) -> None:
    """`mu` (2048,) and `sigma` (2048, 2048) float64 of `features`, as pytorch-fid and clean-fid store
    them, plus `about` as a JSON string under `record`; written atomically."""
    import numpy as np

    from gancompress.io import atomic_path

    stats = fid_metrics.statistics_of(features)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, mu=np.asarray(stats["mu"], dtype=np.float64), sigma=np.asarray(stats["sigma"], dtype=np.float64),
                 record=np.array(json.dumps(about, indent=2)))


@torch.inference_mode()
def lpips_to_teacher(generator, teacher, z: torch.Tensor, lpips_model, batch_size: int, device, noise_seed: int = 0) -> dict:
    """Per-image LPIPS between generator(z_i) and teacher(z_i) (same noise too): mean and standard deviation."""
    teacher.eval()
    distances = []
    for span, images in sample_images(generator, z, batch_size, device, noise_seed):
        teacher_images = generate(teacher, z[span], device, noise_seed, span.start).float()
        distances.append(lpips_distance(lpips_model, images.to(device), teacher_images).cpu())
    d = torch.cat(distances).double()
    return {"mean": float(d.mean()), "std": float(d.std()), "n": len(d), "version": "0.1",
            "pairs": "generator(z_i) vs teacher(z_i), same latents", "resize": LPIPS_RESIZE_RULE}


def _lpips_unavailable(reference: Reference, generator) -> dict | None:
    """None when LPIPS to the reference teacher can be computed, else the reason it cannot."""
    if reference.kind != "teacher":
        return {"available": False, "reason": "LPIPS to a teacher needs a teacher reference (teacher:NAME)"}
    t = reference.teacher
    if (t.z_dim, t.resolution, t.out_channels) != (generator.z_dim, generator.resolution, generator.out_channels):
        return {"available": False, "reason": "generator and teacher differ in z_dim, resolution or channels"}
    return None


def latents_rule(seed: int, per_layer_noise: bool) -> str:
    """How the generated side's inputs are drawn (`latents`, `_noise_rng`), in words for records."""
    return f"z ~ N(0, I) drawn on the CPU from torch seed {seed}" + (
        f"; per-layer noise per image from a torch generator seeded with sha256('noise/{seed}/<image index>')[:4]"
        if per_layer_noise else "")


def protocol(n, n_ref, seed, ref_seed, batch_size, device, reference, per_layer_noise: bool = False,
             resize: str = "torch-fidelity") -> dict:
    weights = assets.provenance("fid-inception")
    if reference.kind == "statistics":
        ident = reference.identity
        ref_desc = (f"precomputed mu/sigma in {ident['path']} (sha256 {ident['sha256'][:12]}), written by "
                    f"{ident['written_by']}, from {ident['n']} images")
    else:
        ref_desc = {
            "teacher": f"{n_ref} fresh teacher samples, latents N(0, I) from seed {ref_seed}",
            "dataset": f"{n_ref} images of {reference.label}, random subset with seed {ref_seed}",
            "folder": f"{n_ref} images of {reference.label}, random subset with seed {ref_seed}",
        }[reference.kind]
    extra = {}
    if reference.kind == "statistics":
        extra = {"reference_protocol": {k: reference.identity[k] for k in ("n", "source", *protocol_features())},
                 "reference_same_feature_protocol": same_feature_protocol(reference, fid_metrics.RESIZES[resize])}
    return {
        "n_generated": n,
        "latents": latents_rule(seed, per_layer_noise),
        "n_reference": n_ref,
        "reference": ref_desc,
        "feature_extractor": fid_metrics.FEATURE_EXTRACTOR_ID,
        "feature_weights": weights,
        "resize": fid_metrics.RESIZES[resize],
        "resize_mode": resize,
        "to_uint8": TO_UINT8_RULE,
        "grayscale": GRAYSCALE_RULE,
        "fid": "torch-fidelity fid_statistics_to_metric on float64 mean/covariance of the 2048-d features",
        "kid": STATISTICS_KID_UNAVAILABLE if reference.kind == "statistics" else
               f"torch-fidelity kid_features_to_metric: polynomial kernel (degree 3, gamma 1/2048, coef 1), "
               f"{fid_metrics.KID_SUBSETS} subsets of {fid_metrics.kid_subset_size(n, n_ref)}, seed {seed}",
        "batch_size": batch_size,
        "device": device if device == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torch_fidelity": torch_fidelity.__version__,
        "gancompress": gancompress.__version__,
        "cpu": platform.processor() or platform.machine(),
        **extra,
    }


def format_table(record: dict) -> str:
    m, c, p = record["metrics"], record["cost"], record["protocol"]
    rows = [
        ("generator", f"{record['generator']['name']} (sha256 {record['generator']['sha256'][:12]})"),
        ("reference", f"{record['reference']['label']} ({p['reference']})"),
        ("FID", f"{m['fid']:.3f}   (n = {p['n_generated']} vs {p['n_reference']})"),
        ("KID", f"{m['kid']['mean']:.5f} +- {m['kid']['std']:.5f}" if "mean" in m["kid"] else
         f"unavailable: {m['kid']['reason']}"),
    ]
    if "reference_protocol" in p:
        rows.append(("reference made", "with our features, weights and resize"
                     if p["reference_same_feature_protocol"] is True else
                     "with different features, weights or resize: FID is not comparable"
                     if p["reference_same_feature_protocol"] is False else
                     "by an unknown protocol (images, Inception weights, resize): compare with care"))
    lp = m["lpips"]
    rows.append(("LPIPS to teacher", f"{lp['mean']:.4f} +- {lp['std']:.4f} (std, {lp['net']} v{lp['version']}, n = {lp['n']})"
                 if "mean" in lp else f"unavailable: {lp['reason']}"))
    if m.get("inception_score"):
        rows.append(("Inception Score", m["inception_score"]["reason"]))
    params = f"{c['params']:,}"
    if "params_mapping" in c:
        params += f" (mapping {c['params_mapping']:,}, synthesis {c['params_synthesis']:,})"
    rows += [("params", params), ("MACs / image", f"{c['macs_per_image'] / 1e6:.1f} M")]
    for lat in c.get("latency", []):
        rows.append((f"latency b{lat['batch_size']}", f"{lat['median_ms_per_image']:.3f} ms/img median, IQR "
                     f"{lat['iqr_ms_per_image']:.3f} ({lat['device']}, {lat['threads']} threads)"))
    w = p["feature_weights"]
    rows += [
        ("features", f"{p['feature_extractor']}, weights {w['asset']} sha256 {w['sha256'][:12]}"),
        ("resize", "PIL bicubic to 299 on uint8, float result (clean-fid 'clean')"
         if p.get("resize_mode") == "clean" else "bilinear to 299 like TF1.x (torch-fidelity), uint8 input"),
        ("computed by", p.get("feature_backend", "torch")),
        ("reference cache", record["reference"]["features"]["cache"]),
        ("device", f"{p['device']}, {p['threads']} threads, torch {p['torch']}"),
        ("time", ", ".join(f"{k[:-2]} {v:.1f}s" for k, v in record["timings"].items())),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


SAMPLES_RECORD = "generate.json"


def write_samples(generator_spec, out: str | Path, n: int, seed: int = 0, batch_size: int = 64, device=None,
                  progress: bool = True) -> dict:
    """Write the n images `evaluate` would generate with `seed` (the same latents, per-layer noise and
    uint8 quantisation) so FID can be recomputed by other tools: `out` a new folder of lossless PNGs
    (000000.png, ...; grayscale as L, colour as RGB) with generate.json beside them, or a `.npz` with
    `images` (N, H, W, C) uint8, `z` (N, z_dim) float32 and `record` (the same JSON). Returns the record."""
    import numpy as np
    from PIL import Image

    from gancompress.io import atomic_path, atomic_write_text, check_writable

    if n < 1:
        raise EvaluationError(f"--n must be at least 1, got {n}")
    out = Path(out)
    as_npz = out.suffix == ".npz"
    if not as_npz and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EvaluationError(f"{out} exists and is not an empty folder; choose a new --out (or a FILE.npz)")
    device = device or default_device()
    generator, identity = (resolve_generator(generator_spec, device) if isinstance(generator_spec, (str, Path))
                           else (generator_spec.to(device), {"name": type(generator_spec).__name__}))
    check_writable(out if as_npz else out / SAMPLES_RECORD)
    z = latents(n, generator.z_dim, seed)
    record = {"generator": {k: v for k, v in identity.items() if k != "config"}, "n": n, "seed": seed,
              "latents": latents_rule(seed, family_of(generator).has_shared_inputs),
              "to_uint8": TO_UINT8_RULE, "resolution": generator.resolution, "channels": generator.out_channels,
              "format": "uint8 images (N, H, W, C), z float32 (N, z_dim)" if as_npz else
                        "lossless PNG per image, 000000.png upwards in latent order (L for 1 channel, RGB for 3)",
              "same_as": f"the generated side of `gancompress eval --generator {identity.get('name')} --n {n} --seed {seed}`",
              "gancompress": gancompress.__version__, "torch": torch.__version__}
    if not as_npz:
        out.mkdir(parents=True, exist_ok=True)
    chunks = []
    bar = tqdm(total=n, desc="generate", unit="img", disable=not progress)
    for span, images in sample_images(generator, z, batch_size, device, noise_seed=seed):
        pixels = to_uint8(images).permute(0, 2, 3, 1).numpy()  # NHWC
        if as_npz:
            chunks.append(pixels)
        else:
            for i, image in zip(range(span.start, span.stop), pixels):
                Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(out / f"{i:06d}.png")
        bar.update(span.stop - span.start)
    bar.close()
    text = json.dumps(record, indent=2) + "\n"
    if as_npz:
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.savez(f, images=np.concatenate(chunks), z=z.numpy(), record=np.array(text))
    else:
        atomic_write_text(out / SAMPLES_RECORD, text)
    return record
