"""The accumulate-only spiking core in Amaranth HDL (see docs/hardware.md).

Importing this package does not import Amaranth; each component module does.
"""
