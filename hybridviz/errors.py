"""Errors a user can act on. The CLI prints their message as one sentence and exits non-zero, no traceback."""


class HybridvizError(Exception):
    """Base class: the message alone must tell the user what went wrong and what to do."""


class DataFileMissing(HybridvizError):
    def __init__(self, file: str, looked_in: list[str], source: str):
        where = ", ".join(looked_in)
        super().__init__(f"Data file {file} was not found (looked in: {where}); obtain it from {source}.")
        self.file = file


class DataFormatError(HybridvizError):
    """A data file exists but cannot be read as the expected format."""


class UnknownName(HybridvizError):
    """An unknown task, language, setting or model name."""


class EncoderUnavailable(HybridvizError):
    """A model could not be loaded (offline, missing folder, bad weights)."""


class EmptyPool(HybridvizError):
    """A retrieval setting has no candidates or no answerable queries."""
