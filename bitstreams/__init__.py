"""The PYNQ-Z2 vendor flow: ``build.tcl`` (Vivado block design -> ``<name>.bit`` + ``<name>.hwh``) and
``manifest.py`` (the ``manifest.json`` that travels with them and that the driver checks)."""
