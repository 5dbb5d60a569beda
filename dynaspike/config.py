"""The model configuration: the architecture facts that change bits or hardware.

It travels with every artifact (model file, Verilog, bitstream manifest) as JSON, and the driver refuses a
model/bitstream pair whose configurations disagree.
"""

import json
from dataclasses import asdict, dataclass, fields

MODULE_KINDS = ("attn", "mlp")  # the two DTS-masked modules of every block, in execution order


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a Spikformer-style spiking ViT with dynamic time steps and adaptive tokens.

    Every field is validated on construction; the error names the field, the value and what is allowed.
    """

    img_size: int = 8        # square input images, pixels per side
    in_channels: int = 1     # image channels
    patch_size: int = 2      # square patches, pixels per side; tokens = (img_size / patch_size) ** 2
    embed_kernel: int = 2    # each token's embedding sees a k x k window centred on its patch (k >= patch)
    dim: int = 64            # embedding width D (channels of the residual stream)
    heads: int = 4           # attention heads; head_dim = dim / heads
    blocks: int = 2          # transformer blocks L
    mlp_ratio: int = 4       # MLP hidden width = mlp_ratio * dim
    t_max: int = 4           # time steps T_max
    num_classes: int = 10

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{f.name} must be a positive integer, got {value!r}")
        if self.img_size % self.patch_size:
            raise ValueError(f"ModelConfig.img_size={self.img_size} is not a multiple of "
                             f"patch_size={self.patch_size}")
        if self.embed_kernel < self.patch_size or (self.embed_kernel - self.patch_size) % 2:
            raise ValueError(f"ModelConfig.embed_kernel={self.embed_kernel} must be >= patch_size="
                             f"{self.patch_size} and differ from it by an even number")
        if self.dim % self.heads:
            raise ValueError(f"ModelConfig.dim={self.dim} is not a multiple of heads={self.heads}")

    @property
    def num_tokens(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    @property
    def embed_pad(self) -> int:
        """Zero pixels added on each side of the image so every token's window fits."""
        return (self.embed_kernel - self.patch_size) // 2

    @property
    def patch_dim(self) -> int:
        """Inputs of one token's embedding: in_channels * embed_kernel ** 2 (channel-major, then row-major)."""
        return self.in_channels * self.embed_kernel ** 2

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def hidden_dim(self) -> int:
        return self.mlp_ratio * self.dim

    @property
    def num_modules(self) -> int:
        """DTS-masked modules: module m = 2 * block + (0 for attn, 1 for mlp)."""
        return len(MODULE_KINDS) * self.blocks

    def module_name(self, m: int) -> str:
        return f"{MODULE_KINDS[m % len(MODULE_KINDS)]}{m // len(MODULE_KINDS)}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        if not isinstance(d, dict):
            raise ValueError(f"model config must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"model config has unknown keys {unknown}; known keys are {sorted(known)}")
        missing = sorted(known - set(d))
        if missing:
            raise ValueError(f"model config is missing keys {missing}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> "ModelConfig":
        return cls.from_dict(json.loads(s))
