"""Transports: how the driver reaches a core. ``base.Transport`` is the interface; ``golden`` (the golden
model behind the register map and stream protocol), ``sim`` (the Verilator-built core under cocotb) and
``board`` (PYNQ: AXI DMA + MMIO) implement it. Import the one you need; each imports its own dependencies."""
