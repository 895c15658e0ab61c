"""Import NVlabs stylegan2-ada-pytorch / stylegan3 (config stylegan2) `.pkl` snapshots without
their source tree, and without running any code from the file.

Those pickles hold `G`, `D`, `G_ema` (and `augment_pipe`, `training_set_kwargs`) as "persistent"
objects: each one is a call to `torch_utils.persistence._reconstruct_persistent_obj(meta)` where
`meta` carries the Python source of the network module, a class name and the module's `__dict__`.
A plain `pickle.load` would import that source and execute it. `NVlabsUnpickler` instead resolves
only an allow-list of globals (tensor and storage rebuilders, OrderedDict, numeric numpy scalars
and arrays, dnnlib's EasyDict) and turns each persistent object into an inert `PersistentObject`
(class name + state): the embedded source is never looked at. Tensor storages are read with
`torch.load(weights_only=True)`. Any other global makes the load fail with its name.

Key map (NVlabs -> gancompress), for the generator:
  mapping.fc<i>.*                        -> mapping.layers.<i>.*
  mapping.w_avg                          -> w_avg
  synthesis.b4.const (C, 4, 4)           -> synthesis.const (1, C, 4, 4)
  synthesis.b<r>.conv0/conv1.*           -> synthesis.convs.b<r>_conv0/_conv1.* (weight, affine -> conv.*)
  synthesis.b<r>.conv<j>.noise_const     -> noise_const_<k> (in layer order)
  synthesis.b<r>.torgb.*                 -> synthesis.to_rgbs.b<r>.*
and for the discriminator (architecture resnet): b<R>.fromrgb -> from_rgb, b<r>.conv0/conv1/skip ->
blocks.<j>.conv1/conv2/skip (j counts down from the image resolution), b4.conv/fc/out -> final_conv,
final_linear, head. conv_clamp (256 in the NVlabs training configs) is carried into the config.
Layers that NVlabs runs in fp16 on a GPU are computed in fp32 here (their force_fp32 output).
"""

from __future__ import annotations

import io
import pickle
import re
from collections import OrderedDict
from pathlib import Path

import torch

from gancompress.families.layers import fir_kernel
from gancompress.families.stylegan2.config import StyleGAN2Config, StyleGAN2DiscriminatorConfig
from gancompress.families.stylegan2.importers import load_discriminator
from gancompress.families.stylegan2.networks import StyleGAN2Discriminator, StyleGAN2Generator
from gancompress.foreign import ForeignCheckpointError

TORCH_ZIP_MAGIC = b"PK\x03\x04"
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # pickled magic number of torch.save's old format


class PersistentObject:
    """An NVlabs network module as data: its class name and its `__dict__`, nothing executable."""

    def __init__(self, meta: dict):
        if not isinstance(meta, dict) or meta.get("type") != "class" or "class_name" not in meta:
            raise ForeignCheckpointError(f"unexpected persistent object record {type(meta).__name__}")
        self.class_name = str(meta["class_name"])
        self.state = dict(meta.get("state") or {})

    def __repr__(self):
        return f"PersistentObject({self.class_name})"

    def attr(self, name, default=None):
        return self.state.get(name, default)

    def children(self) -> dict:
        return dict(self.state.get("_modules") or {})

    def state_dict(self, prefix: str = "") -> "OrderedDict[str, torch.Tensor]":
        """Parameters and persistent buffers, keyed like torch's state_dict."""
        out = OrderedDict()
        skip = set(self.state.get("_non_persistent_buffers_set") or ())
        for name, tensor in (self.state.get("_parameters") or {}).items():
            if tensor is not None:
                out[prefix + name] = tensor.detach()
        for name, tensor in (self.state.get("_buffers") or {}).items():
            if tensor is not None and name not in skip:
                out[prefix + name] = tensor.detach()
        for name, child in self.children().items():
            if isinstance(child, PersistentObject):
                out.update(child.state_dict(f"{prefix}{name}."))
            elif child is not None:
                raise ForeignCheckpointError(f"{prefix}{name}: submodule of unsupported type {type(child).__name__}")
        return out

    def find(self, path: str) -> "PersistentObject":
        node = self
        for part in path.split("."):
            node = node.children().get(part)
            if not isinstance(node, PersistentObject):
                raise ForeignCheckpointError(f"{self.class_name} has no submodule {path!r}")
        return node


class _AttrDict(dict):
    """Stands in for dnnlib.EasyDict (a dict with attribute access)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as err:
            raise AttributeError(name) from err


def _load_storage(data: bytes):
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _numpy_scalar(dtype, data=None):
    import numpy as np

    if getattr(dtype, "kind", None) not in ("b", "i", "u", "f"):
        raise ForeignCheckpointError(f"refusing a numpy scalar of dtype {dtype}")
    return np.frombuffer(data, dtype=dtype)[0].item()


def _rebuild_from_type_v2(func, new_type, args, state):
    if new_type not in (torch.Tensor, torch.nn.Parameter):
        raise ForeignCheckpointError(f"refusing a tensor of type {getattr(new_type, '__name__', new_type)}")
    return func(*args)


def _reconstruct_array(cls, shape, dtype_code):
    import numpy as np

    if cls is not np.ndarray:
        raise ForeignCheckpointError(f"refusing a numpy array subclass {getattr(cls, '__name__', cls)}")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def _numpy_allowed() -> dict:
    """NVlabs layers keep some numbers as numpy scalars or small arrays (numpy 1 and 2 module names)."""
    import numpy as np

    allowed = {("numpy", "dtype"): np.dtype, ("numpy", "ndarray"): np.ndarray}
    for core in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(core, "scalar")] = _numpy_scalar
        allowed[(core, "_reconstruct")] = _reconstruct_array
    return allowed


class NVlabsUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only the globals NVlabs network snapshots need."""

    ALLOWED = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentObject,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Tensor"): torch.Tensor,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("torch.storage", "_load_from_bytes"): _load_storage,
        ("collections", "OrderedDict"): OrderedDict,
        ("dnnlib.util", "EasyDict"): _AttrDict,
    }

    def find_class(self, module, name):
        allowed = self.ALLOWED.get((module, name)) or _numpy_allowed().get((module, name))
        if allowed is None:
            raise ForeignCheckpointError(
                f"the pickle refers to {module}.{name}, which an NVlabs network snapshot does not need; "
                "refusing to load it (only network weights are read from .pkl files)")
        return allowed


def is_plain_pickle(path) -> bool:
    """True for a pickle that is not a torch.save file (zip or legacy format)."""
    if not Path(path).is_file():
        raise ForeignCheckpointError(f"{path}: no such file")
    with open(path, "rb") as handle:
        head = handle.read(len(TORCH_LEGACY_MAGIC))
    return head[:1] == b"\x80" and not head.startswith(TORCH_LEGACY_MAGIC)


def load_nvlabs_pickle(path) -> dict:
    """The snapshot dict with each network as a PersistentObject. Runs no code from the file."""
    try:
        with open(path, "rb") as handle:
            data = NVlabsUnpickler(handle).load()
    except ForeignCheckpointError as err:
        raise ForeignCheckpointError(f"{path}: {err}") from err
    except Exception as err:  # truncated or corrupt files raise many types
        raise ForeignCheckpointError(f"{path}: not a readable NVlabs network pickle ({type(err).__name__}: "
                                     f"{str(err).splitlines()[0][:160] if str(err) else ''})") from err
    if not isinstance(data, dict) or not any(isinstance(data.get(k), PersistentObject) for k in ("G_ema", "G")):
        found = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise ForeignCheckpointError(f"{path}: no NVlabs generator (expected 'G_ema' or 'G'; found {found})")
    return data


def _check_filter(state: dict, key: str) -> None:
    kernel = state.get(key)
    if kernel is not None and not torch.allclose(kernel.float(), fir_kernel((1, 3, 3, 1), 1.0), atol=1e-6):
        raise ForeignCheckpointError(f"{key}: resample filter is not the [1, 3, 3, 1] filter this importer supports")


def _check_supported(net: PersistentObject, what: str) -> None:
    if net.attr("c_dim", 0):
        raise ForeignCheckpointError(f"{what} is class-conditional (c_dim = {net.attr('c_dim')}); "
                                     "gancompress supports unconditional generators only")


def nvlabs_generator(net: PersistentObject) -> tuple[StyleGAN2Generator, dict]:
    """A gancompress StyleGAN2 generator with the weights of an NVlabs `Generator` object."""
    if net.class_name != "Generator" or "synthesis" not in net.children() or "mapping" not in net.children():
        raise ForeignCheckpointError(f"not an NVlabs StyleGAN2 Generator (found {net.class_name} with "
                                     f"submodules {sorted(net.children())})")
    _check_supported(net, "the generator")
    synthesis, mapping = net.find("synthesis"), net.find("mapping")
    if "L0" in synthesis.children() or "input" in synthesis.children():
        raise ForeignCheckpointError("this is a StyleGAN3 (config t or r) generator; only config stylegan2 is supported")
    state = net.state_dict()
    resolution = int(net.attr("img_resolution"))
    names = [f"b{4 * 2**i}" for i in range(resolution.bit_length() - 2)]
    for name in names:
        arch = synthesis.find(name).attr("architecture", "skip")
        if arch != "skip":
            raise ForeignCheckpointError(f"synthesis.{name}: architecture {arch!r}; only 'skip' (StyleGAN2 config E/F) "
                                         "is supported")
    n_fc = len({m.group(1) for k in state if (m := re.match(r"mapping\.fc(\d+)\.weight$", k))})
    fc0 = mapping.find("fc0")
    conv_clamp = synthesis.find(f"{names[0]}.conv1").attr("conv_clamp")
    config = StyleGAN2Config(
        resolution=resolution, channels=tuple(state[f"synthesis.{n}.conv1.weight"].shape[0] for n in names),
        z_dim=int(net.attr("z_dim")), w_dim=int(net.attr("w_dim")), mapping_layers=n_fc,
        mapping_lr_mul=float(fc0.attr("lr_multiplier", 0.01)), out_channels=int(net.attr("img_channels")),
        w_avg_beta=float(mapping.attr("w_avg_beta", 0.995) or 0.995),
        conv_clamp=None if conv_clamp is None else float(conv_clamp))
    ours = {"synthesis.const": state[f"synthesis.{names[0]}.const"][None], "w_avg": state["mapping.w_avg"]}
    for i in range(n_fc):
        ours[f"mapping.layers.{i}.weight"] = state[f"mapping.fc{i}.weight"]
        ours[f"mapping.layers.{i}.bias"] = state[f"mapping.fc{i}.bias"]
    noise = []
    for i, name in enumerate(names):
        src = f"synthesis.{name}"
        _check_filter(state, f"{src}.resample_filter")
        for conv in (["conv0"] if i else []) + ["conv1"]:
            s, d = f"{src}.{conv}", f"synthesis.convs.{name}_{conv}"
            _check_filter(state, f"{s}.resample_filter")
            ours[f"{d}.conv.weight"] = state[f"{s}.weight"]
            ours[f"{d}.conv.affine.weight"] = state[f"{s}.affine.weight"]
            ours[f"{d}.conv.affine.bias"] = state[f"{s}.affine.bias"]
            ours[f"{d}.bias"] = state[f"{s}.bias"]
            # layers built with use_noise=False have no noise inputs: strength 0 is the same function
            ours[f"{d}.noise_strength"] = state.get(f"{s}.noise_strength", torch.zeros(())).reshape(())
            noise.append(state.get(f"{s}.noise_const"))
        d = f"synthesis.to_rgbs.{name}"
        ours[f"{d}.conv.weight"] = state[f"{src}.torgb.weight"]
        ours[f"{d}.conv.affine.weight"] = state[f"{src}.torgb.affine.weight"]
        ours[f"{d}.conv.affine.bias"] = state[f"{src}.torgb.affine.bias"]
        ours[f"{d}.bias"] = state[f"{src}.torgb.bias"]
    generator = StyleGAN2Generator(config)
    for k, buffer in enumerate(noise):
        ours[f"noise_const_{k}"] = buffer[None, None] if buffer is not None else getattr(generator, f"noise_const_{k}")
    generator.load_state_dict({k: v.float() for k, v in ours.items()})
    notes = {"source": "NVlabs stylegan2-ada-pytorch / stylegan3 pickle", "mapping_lr_mul": config.mapping_lr_mul,
             "w_avg": "mapping.w_avg from the checkpoint", "conv_clamp": config.conv_clamp}
    return generator.eval(), notes


def nvlabs_discriminator(net: PersistentObject) -> StyleGAN2Discriminator:
    if net.class_name != "Discriminator" or "b4" not in net.children():
        raise ForeignCheckpointError(f"not an NVlabs StyleGAN2 Discriminator (found {net.class_name})")
    _check_supported(net, "the discriminator")
    state = net.state_dict()
    resolution = int(net.attr("img_resolution"))
    top = f"b{resolution}"
    blocks = [f"b{resolution >> j}" for j in range(resolution.bit_length() - 3)]  # b<R> ... b8
    for name in blocks:
        arch = net.find(name).attr("architecture", "resnet")
        if arch != "resnet":
            raise ForeignCheckpointError(f"{name}: discriminator architecture {arch!r}; only 'resnet' is supported")
    mbstd = net.find("b4.mbstd")
    from_rgb = state[f"{top}.fromrgb.weight"]
    channels = tuple(reversed([from_rgb.shape[0]] + [state[f"{name}.conv1.weight"].shape[0] for name in blocks]))
    mbstd_features = int(mbstd.attr("num_channels", 1))
    conv_clamp = net.find("b4.conv").attr("conv_clamp")
    config = StyleGAN2DiscriminatorConfig(resolution=resolution, channels=channels, in_channels=from_rgb.shape[1],
                                          mbstd_group=int(mbstd.attr("group_size") or 4), mbstd_features=mbstd_features,
                                          conv_clamp=None if conv_clamp is None else float(conv_clamp))
    for name in blocks:
        for part in ("", ".conv0", ".conv1", ".skip", ".fromrgb"):
            _check_filter(state, f"{name}{part}.resample_filter")
    block_keys = ("conv0.weight", "conv0.bias", "conv1.weight", "conv1.bias", "skip.weight")
    return load_discriminator(
        config, state, (f"{top}.fromrgb.weight", f"{top}.fromrgb.bias"),
        [tuple(f"{name}.{key}" for key in block_keys) for name in blocks],
        tuple(f"b4.{key}" for key in ("conv.weight", "conv.bias", "fc.weight", "fc.bias", "out.weight", "out.bias")))


def import_nvlabs(path: str | Path) -> dict:
    """{'generator': (G, notes), 'discriminator': D or None} from an NVlabs snapshot (`G_ema` preferred)."""
    data = load_nvlabs_pickle(path)
    net = data.get("G_ema") if isinstance(data.get("G_ema"), PersistentObject) else data["G"]
    generator = nvlabs_generator(net)
    discriminator = nvlabs_discriminator(data["D"]) if isinstance(data.get("D"), PersistentObject) else None
    return {"generator": generator, "discriminator": discriminator}
