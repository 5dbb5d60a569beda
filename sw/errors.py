"""The driver's exceptions. Every wait ends in :class:`DriverTimeout` naming its stage, never a hang."""

from dynaspike.regmap import ErrorCode


class DriverError(RuntimeError):
    """The core or the transport did something the protocol does not allow."""


class DriverTimeout(DriverError, TimeoutError):
    """A wait (DMA send or receive, MODEL_LOADED, DONE) did not end within its time-out."""

    def __init__(self, stage: str, timeout_s: float, detail: str = ""):
        self.stage, self.timeout_s = stage, timeout_s
        super().__init__(f"time-out after {timeout_s:g} s in stage '{stage}'" + (f": {detail}" if detail else ""))


class CoreError(DriverError):
    """The core stopped with STATUS.ERROR; ``code`` is its ERROR_CODE (``regmap.ErrorCode``), ``beat`` its
    ERROR_BEAT. The core drops input until SOFT_RESET (``Driver.soft_reset``)."""

    def __init__(self, stage: str, code: int, beat: int):
        self.stage, self.code, self.beat, self.code_name = stage, code, beat, ErrorCode.name(code)
        super().__init__(f"the core reported error {self.code_name} ({code}) at input beat {beat} "
                         f"during '{stage}'; SOFT_RESET clears it")


class ImageError(DriverError, ValueError):
    """Images that do not fit the loaded model's input (shape, dtype), refused before any transfer."""


class ManifestError(DriverError, ValueError):
    """A bitstream manifest that disagrees with the model or with the core it describes."""
