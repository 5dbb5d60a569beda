"""The exported integer model: its format, validation, and file round trip.

Format ``dynaspike-model`` version ``ARTIFACT_VERSION`` (2) is a NumPy ``.npz`` archive (loaded with ``allow_pickle=False``) that
holds one integer array per tensor below and one entry ``meta`` (UTF-8 JSON bytes as a uint8 array) with:
``format``, ``version``, ``config`` (ModelConfig), ``formats`` (NumberFormats, must equal this build's),
``params`` (IntParams) and ``info`` (free-form provenance: training command, seed, accuracies).

Tensors (``l`` is the block index; ``w`` arrays are (out, in); see docs/integer_model.md for the arithmetic):

====================  ======  =================  =====================================================
name                  dtype   shape              meaning
====================  ======  =================  =====================================================
emb_w                 int16   (D, patch_dim)     patch embedding weights (BN folded, << emb_shift)
emb_b                 int32   (N, D)             embedding bias + position embedding, per token
b{l}.{q,k,v}_w        int8    (D, D)             SSA projections (BN folded, per-channel scale)
b{l}.{q,k,v}_b        int32   (D,)               their biases
b{l}.{q,k,v}_th       int32   (D,)               their LIF thresholds (> 0)
b{l}.proj_w           int8    (D, D)             SSA output projection, residual units
b{l}.proj_b           int32   (D,)
b{l}.fc1_w            int8    (Hd, D)            MLP first layer (per-channel scale); Hd = mlp_ratio * D
b{l}.fc1_b, fc1_th    int32   (Hd,)
b{l}.fc2_w            int8    (D, Hd)            MLP second layer, residual units
b{l}.fc2_b            int32   (D,)
head_w                int16   (classes, D)       classifier on the pooled output spike counts
head_b                int32   (classes,)
mask                  uint8   (2L, T)            DTS mask table, module m = 2l (attn) / 2l+1 (mlp)
halt_lut              uint8   (halt_lut_size,)   halting score table, units of 2**-halt_frac_bits
====================  ======  =================  =====================================================
"""

import io
import json
import os
import zipfile
import zlib
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .config import ModelConfig
from .formats import FORMATS, NumberFormats

ARTIFACT_FORMAT = "dynaspike-model"
ARTIFACT_VERSION = 2  # 2: embed_kernel; readout of halted tokens on their frozen residual; halting
                      # checked only after blocks that ran
MAX_ARTIFACT_BYTES = 64 << 20  # far above any model the XC7Z020 core can hold; refuses junk early


class ArtifactError(ValueError):
    """A model file or in-memory model that does not satisfy the format."""


@dataclass(frozen=True)
class IntParams:
    """Scalar integer parameters of the exported model (units: see docs/integer_model.md)."""

    res_threshold: int        # threshold of the LIFs fed by the residual stream (attn-in, mlp-in, out)
    attn_threshold: int       # threshold of the attention LIF, in units of Y = Q (K^T V)
    halt_shift: int           # halting LUT index = clamp((X[:, halt_channel] >> halt_shift) - halt_lut_min)
    halt_lut_min: int
    halt_channel: int         # residual channel used as the halting feature
    halt_threshold: int       # a token halts once its cumulative score >= this (fixed point)
    merge_threshold: int      # merge tokens whose spike vectors differ in <= this many bits; -1: never

    def check(self, cfg: ModelConfig, fmt: NumberFormats):
        def need(ok, what):
            if not ok:
                raise ArtifactError(f"params.{what}")
        need(0 < self.res_threshold <= fmt.res_max, f"res_threshold={self.res_threshold} must be in "
             f"[1, {fmt.res_max}]")
        need(0 < self.attn_threshold <= fmt.acc_max, f"attn_threshold={self.attn_threshold} must be > 0")
        need(0 <= self.halt_shift < fmt.res_bits, f"halt_shift={self.halt_shift} must be in "
             f"[0, {fmt.res_bits - 1}]")
        need(abs(self.halt_lut_min) <= fmt.res_max, f"halt_lut_min={self.halt_lut_min} out of range")
        need(0 <= self.halt_channel < cfg.dim, f"halt_channel={self.halt_channel} must be in "
             f"[0, {cfg.dim - 1}]")
        need(0 < self.halt_threshold < (1 << fmt.halt_acc_bits), f"halt_threshold={self.halt_threshold} "
             f"must be in [1, {(1 << fmt.halt_acc_bits) - 1}]")
        need(-1 <= self.merge_threshold <= cfg.dim, f"merge_threshold={self.merge_threshold} must be in "
             f"[-1, {cfg.dim}]")
        # The cumulative halting score must not wrap: at most one score per (step, block).
        need(cfg.t_max * cfg.blocks * fmt.halt_score_max < (1 << fmt.halt_acc_bits),
             f"halt accumulator too narrow for t_max*blocks={cfg.t_max * cfg.blocks}")


def tensor_specs(cfg: ModelConfig, fmt: NumberFormats = FORMATS) -> dict:
    """Return ``{name: (shape, dtype, lo, hi)}`` for every tensor of a model with this config."""
    D, N, Hd, T, M = cfg.dim, cfg.num_tokens, cfg.hidden_dim, cfg.t_max, cfg.num_modules
    i32 = (np.int32, -(1 << 31) + 1, (1 << 31) - 1)
    w8 = (np.int8, -fmt.weight_max, fmt.weight_max)
    th = (np.int32, 1, fmt.acc_max)
    specs = {
        "emb_w": ((D, cfg.patch_dim), np.int16, -fmt.emb_weight_max, fmt.emb_weight_max),
        "emb_b": ((N, D), *i32),
    }
    for l in range(cfg.blocks):
        for name in ("q", "k", "v"):
            specs[f"b{l}.{name}_w"] = ((D, D), *w8)
            specs[f"b{l}.{name}_b"] = ((D,), *i32)
            specs[f"b{l}.{name}_th"] = ((D,), *th)
        specs[f"b{l}.proj_w"] = ((D, D), *w8)
        specs[f"b{l}.proj_b"] = ((D,), *i32)
        specs[f"b{l}.fc1_w"] = ((Hd, D), *w8)
        specs[f"b{l}.fc1_b"] = ((Hd,), *i32)
        specs[f"b{l}.fc1_th"] = ((Hd,), *th)
        specs[f"b{l}.fc2_w"] = ((D, Hd), *w8)
        specs[f"b{l}.fc2_b"] = ((D,), *i32)
    specs["head_w"] = ((cfg.num_classes, D), np.int16, -fmt.head_weight_max, fmt.head_weight_max)
    specs["head_b"] = ((cfg.num_classes,), *i32)
    specs["mask"] = ((M, T), np.uint8, 0, 1)
    specs["halt_lut"] = ((fmt.halt_lut_size,), np.uint8, 0, fmt.halt_score_max)
    return specs


# Layers whose accumulator (bias + weights selected by binary spikes) must fit acc_bits.
def _spike_layers(cfg: ModelConfig):
    for l in range(cfg.blocks):
        for name in ("q", "k", "v", "proj", "fc1", "fc2"):
            yield f"b{l}.{name}"


@dataclass
class IntModel:
    """An exported integer model: config, scalar params, tensors and provenance."""

    config: ModelConfig
    params: IntParams
    tensors: dict
    info: dict = field(default_factory=dict)
    formats: NumberFormats = FORMATS

    def __getitem__(self, name):
        return self.tensors[name]

    def validate(self):
        """Check every tensor's presence, shape, dtype and value range; raise ArtifactError naming it."""
        cfg, fmt = self.config, self.formats
        if fmt != FORMATS:
            raise ArtifactError(f"number formats {asdict(fmt)} differ from this build's {asdict(FORMATS)}")
        self.params.check(cfg, fmt)
        specs = tensor_specs(cfg, fmt)
        missing = sorted(set(specs) - set(self.tensors))
        if missing:
            raise ArtifactError(f"missing tensors {missing}")
        extra = sorted(set(self.tensors) - set(specs))
        if extra:
            raise ArtifactError(f"unexpected tensors {extra}")
        for name, (shape, dtype, lo, hi) in specs.items():
            a = self.tensors[name]
            if not isinstance(a, np.ndarray):
                raise ArtifactError(f"tensor {name} is a {type(a).__name__}, expected a numpy array")
            if a.shape != shape:
                raise ArtifactError(f"tensor {name} has shape {a.shape}, expected {shape}")
            if a.dtype != np.dtype(dtype):
                raise ArtifactError(f"tensor {name} has dtype {a.dtype}, expected {np.dtype(dtype)}")
            if a.size and (a.min() < lo or a.max() > hi):
                bad = np.flatnonzero((a < lo) | (a > hi))[0]
                where = tuple(int(i) for i in np.unravel_index(bad, shape))
                raise ArtifactError(f"tensor {name}[{where}] = "
                                    f"{a.flat[bad]} is outside [{lo}, {hi}]")
        for layer in _spike_layers(cfg):
            w, b = self.tensors[layer + "_w"].astype(np.int64), self.tensors[layer + "_b"].astype(np.int64)
            worst = np.abs(b) + np.abs(w).sum(axis=1)
            if worst.max() > fmt.acc_max:
                c = int(worst.argmax())
                raise ArtifactError(f"layer {layer} channel {c} can reach {worst[c]}, beyond the "
                                    f"{fmt.acc_bits}-bit accumulator (max {fmt.acc_max})")
        emb = (np.abs(self.tensors["emb_w"].astype(np.int64)).sum(axis=1) * ((1 << fmt.pixel_bits) - 1)
               + np.abs(self.tensors["emb_b"].astype(np.int64)).max(axis=0))
        if emb.max() > (1 << 31) - 1:
            raise ArtifactError(f"embedding accumulator can reach {emb.max()}, beyond 32 bits")
        # classifier: the pooled counts are at most N * T per channel (sizes sum to N)
        head = (np.abs(self.tensors["head_b"].astype(np.int64))
                + np.abs(self.tensors["head_w"].astype(np.int64)).sum(axis=1) * cfg.num_tokens * cfg.t_max)
        if head.max() > (1 << (fmt.logit_bits - 1)) - 1:
            c = int(head.argmax())
            raise ArtifactError(f"classifier logit {c} can reach {head[c]}, beyond {fmt.logit_bits} bits")
        return self

    # ----------------------------------------------------------------------------------------- files
    def save(self, path):
        """Validate and write the model to ``path`` (an .npz file)."""
        self.validate()
        meta = {"format": ARTIFACT_FORMAT, "version": ARTIFACT_VERSION, "config": self.config.to_dict(),
                "formats": asdict(self.formats), "params": asdict(self.params), "info": self.info}
        blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez_compressed(f, meta=blob, **self.tensors)

    @classmethod
    def load(cls, path) -> "IntModel":
        """Read and validate a model file; raise ArtifactError with a clear reason if it is not one."""
        path = os.fspath(path)
        try:
            size = os.path.getsize(path)
        except OSError as e:
            raise ArtifactError(f"cannot read model file {path!r}: {e.strerror}") from None
        if size > MAX_ARTIFACT_BYTES:
            raise ArtifactError(f"model file {path!r} is {size} bytes, above the {MAX_ARTIFACT_BYTES} limit")
        with open(path, "rb") as f:
            data = f.read()
        return cls.from_bytes(data, name=path)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> "IntModel":
        if len(data) > MAX_ARTIFACT_BYTES:
            raise ArtifactError(f"model {name} is {len(data)} bytes, above the {MAX_ARTIFACT_BYTES} limit")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, ValueError, OSError, EOFError) as e:
            raise ArtifactError(f"model {name} is not a {ARTIFACT_FORMAT} file (.npz): {e}") from None
        if "meta" not in arrays:
            raise ArtifactError(f"model {name} has no 'meta' entry: not a {ARTIFACT_FORMAT} file")
        try:
            meta = json.loads(arrays.pop("meta").tobytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ArtifactError(f"model {name}: 'meta' is not valid JSON: {e}") from None
        if not isinstance(meta, dict) or meta.get("format") != ARTIFACT_FORMAT:
            raise ArtifactError(f"model {name}: format is {meta.get('format') if isinstance(meta, dict) else meta!r}, "
                                f"expected {ARTIFACT_FORMAT!r}")
        if meta.get("version") != ARTIFACT_VERSION:
            raise ArtifactError(f"model {name}: format version {meta.get('version')!r} is not supported "
                                f"(this build reads version {ARTIFACT_VERSION})")
        for key in ("config", "formats", "params"):
            if not isinstance(meta.get(key), dict):
                raise ArtifactError(f"model {name}: meta is missing the object {key!r}")
        try:
            cfg = ModelConfig.from_dict(meta["config"])
            fmt = _from_dict(NumberFormats, meta["formats"], "formats")
            params = _from_dict(IntParams, meta["params"], "params")
        except (TypeError, ValueError) as e:
            raise ArtifactError(f"model {name}: {e}") from None
        return cls(cfg, params, arrays, meta.get("info", {}), fmt).validate()


def _from_dict(cls, d: dict, what: str):
    known = {f.name for f in fields(cls)}
    if set(d) != known:
        raise ArtifactError(f"{what} keys {sorted(d)} differ from the expected {sorted(known)}")
    for k, v in d.items():
        if not isinstance(v, int) or isinstance(v, bool):
            raise ArtifactError(f"{what}.{k} must be an integer, got {v!r}")
    return cls(**d)
