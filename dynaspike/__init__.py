"""dynaspike: the facts every side of the project shares.

This package is the single source of truth for the model configuration, the integer number formats and
the exported artifact format. Hardware (Amaranth), the golden model (PyTorch), the cocotb testbenches and
the PYNQ driver all import it. It depends only on the standard library and numpy, so a PYNQ board can
import it without torch or Amaranth.
"""

from .config import ModelConfig
from .formats import FORMATS, NumberFormats

__all__ = ["ModelConfig", "FORMATS", "NumberFormats"]
