"""Integer number formats of the exported model: one definition, used by golden model, RTL and driver.

Every integer that crosses a boundary (artifact, RTL port, memory word, AXI beat) has its width here.
The arithmetic itself is spelled out once, in docs/integer_model.md; this module gives the numbers.

Rounding and overflow, in short:
- Accumulators (bias + sum of weight rows selected by spikes) never overflow by construction: the
  artifact loader checks ``|bias| + sum_i |w_i| <= 2**(ACC_BITS-1) - 1`` for every output channel of every
  spike-fed layer (the worst case: every input spikes, every weight of one sign).
- The LIF update ``H = (V + X) >> 1`` is an arithmetic shift (floor). ``|H| <= max(|V|, |X|)``, so the
  membrane never needs more bits than its input; it is never saturated.
- The residual stream is the only saturating quantity: after every residual add it is clamped to
  ``[RES_MIN, RES_MAX]`` (one clamp per add, so the result does not depend on accumulation order).
- The embedding's requantization is ``(acc) >> EMB_SHIFT`` (floor), then the residual clamp.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class NumberFormats:
    """Widths (in bits, two's complement unless ``unsigned``) of every integer in the model."""

    pixel_bits: int = 8          # input image, unsigned
    weight_bits: int = 8         # q/k/v/proj/fc1/fc2 weights, signed, symmetric [-127, 127]
    emb_weight_bits: int = 16    # embedding weights (the only multiplied weights), signed
    emb_shift: int = 8           # embedding accumulator >> emb_shift gives residual units
    acc_bits: int = 24           # accumulators and LIF membranes, signed
    res_bits: int = 16           # residual stream, signed, saturating
    head_weight_bits: int = 16   # classifier weights, signed
    logit_bits: int = 32         # classifier outputs, signed
    halt_frac_bits: int = 8      # halting scores: h in units of 2**-halt_frac_bits, unsigned
    halt_lut_size: int = 64      # entries of the halting-score lookup table
    halt_acc_bits: int = 16      # cumulative halting score, unsigned
    count_bits: int = 16         # readout spike counts (sum over steps and tokens, size-weighted)

    @property
    def weight_max(self) -> int:
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def emb_weight_max(self) -> int:
        return (1 << (self.emb_weight_bits - 1)) - 1

    @property
    def head_weight_max(self) -> int:
        return (1 << (self.head_weight_bits - 1)) - 1

    @property
    def acc_max(self) -> int:
        return (1 << (self.acc_bits - 1)) - 1

    @property
    def res_max(self) -> int:
        return (1 << (self.res_bits - 1)) - 1

    @property
    def res_min(self) -> int:
        return -(1 << (self.res_bits - 1))

    @property
    def halt_one(self) -> int:
        """The fixed-point value of 1.0 for halting scores."""
        return 1 << self.halt_frac_bits

    @property
    def halt_score_max(self) -> int:
        return (1 << self.halt_frac_bits) - 1


FORMATS = NumberFormats()

#: The embedding's accumulators and biases (the artifact's int32 ``emb_b``; the loader checks that every
#: embedding sum fits): fixed by the artifact format, not a choice of the build, so not in ``formats_id``.
EMB_ACC_BITS = 32
