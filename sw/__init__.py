"""The host side of the core: one driver (``sw.driver.Driver``) over interchangeable transports
(``sw.transports``: the PYNQ-Z2 board, the Verilator-simulated core, the golden model), and
``sw/run_on_board.py``. Importable without torch or Amaranth (the board has numpy only); the golden and
simulated transports import what they need themselves."""
