"""A reader for dlib's binary serialization format (``dlib/serialize.h``, ``dlib/dnn``).

Only what a saved ``dnn`` network needs, read from bytes, never by running dlib:

- integers: one control byte (bit 7 = negative, bits 0–3 = number of payload bytes,
  bits 4–6 always zero), then that many little-endian magnitude bytes;
- ``float``/``double``: an integer mantissa and an integer exponent, ``m · 2^e`` (exponents
  32000/32001/32002 mean +∞/−∞/NaN);
- ``bool``: the character ``'1'`` or ``'0'``; strings: an integer length, then the bytes;
- tensors (version 2): integer version, ``num_samples, k, nr, nc``, then the values as 4-byte
  little-endian IEEE floats (version 1 stores each value as a dlib float);
- alias tensors: integer version 1 and the four dimensions, no data.

Every read checks bounds; a truncated or corrupt file raises :class:`DlibFormatError` naming
the file and the byte offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jndguard.errors import ModelIntegrityError

_SPECIAL_EXPONENTS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}


class DlibFormatError(ModelIntegrityError):
    """A dlib ``.dat`` file is truncated, corrupt or not the network expected."""


@dataclass(frozen=True)
class Tensor:
    """A serialized dlib tensor: shape ``(num_samples, k, nr, nc)`` and its float32 values."""

    shape: tuple[int, int, int, int]
    values: np.ndarray
    offset: int  # byte offset of the tensor in the file (for error messages and bookkeeping)


class DlibReader:
    """Sequential reader over the bytes of one dlib-serialized file.

    Args:
        data: the file's bytes.
        path: the file's name, used in every error message.
    """

    def __init__(self, data: bytes, path: str | Path) -> None:
        self.data = memoryview(data)
        self.path = str(path)
        self.pos = 0

    @classmethod
    def open(cls, path: str | Path) -> DlibReader:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise DlibFormatError(f"{path}: cannot read ({exc})") from exc
        return cls(data, path)

    def error(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.path}: {what} at byte {self.pos} of {len(self.data)} "
                               "(truncated or corrupt dlib file)")

    def _take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.error(f"unexpected end of file reading {what} ({n} bytes)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    # -- scalars ---------------------------------------------------------------------------

    def int(self, what: str = "an integer", max_bytes: int = 8) -> int:
        """A dlib variable-length integer."""
        control = self._take(1, what)[0]
        size, negative = control & 0x0F, bool(control & 0x80)
        if control & 0x70 or size > max_bytes:
            self.pos -= 1
            raise self.error(f"invalid integer control byte 0x{control:02x} reading {what}")
        value = int.from_bytes(self._take(size, what), "little") if size else 0
        return -value if negative else value

    def uint(self, what: str = "an unsigned integer", max_bytes: int = 8) -> int:
        start = self.pos
        value = self.int(what, max_bytes)
        if value < 0:
            self.pos = start
            raise self.error(f"negative value {value} reading {what}")
        return value

    def float(self, what: str = "a float") -> float:
        """A dlib ``float_details`` value: ``mantissa · 2^exponent``."""
        mantissa = self.int(f"{what} (mantissa)")
        exponent = self.int(f"{what} (exponent)", max_bytes=2)
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return math.ldexp(mantissa, exponent)

    def bool(self, what: str = "a bool") -> bool:
        c = bytes(self._take(1, what))
        if c not in (b"0", b"1"):
            self.pos -= 1
            raise self.error(f"invalid bool byte {c!r} reading {what}")
        return c == b"1"

    def string(self, what: str = "a string", max_len: int = 1 << 16) -> str:
        n = self.uint(f"{what} (length)")
        if n > max_len:
            raise self.error(f"implausible string length {n} reading {what}")
        raw = bytes(self._take(n, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.error(f"non-ASCII bytes reading {what}") from exc

    def expect_string(self, *allowed: str) -> str:
        start = self.pos
        s = self.string(f"the layer name {allowed[0]!r}", max_len=64)
        if s not in allowed:
            self.pos = start
            raise self.error(f"found {s!r} where {' or '.join(map(repr, allowed))} was expected")
        return s

    def expect_int(self, value: int, what: str) -> int:
        start = self.pos
        got = self.int(what)
        if got != value:
            self.pos = start
            raise self.error(f"{what} is {got}, expected {value}")
        return got

    # -- tensors ---------------------------------------------------------------------------

    def dims(self, what: str) -> tuple[int, int, int, int]:
        dims = tuple(self.uint(f"{what} dimension") for _ in range(4))
        if math.prod(dims) > (1 << 31):
            raise self.error(f"implausible tensor size {dims} reading {what}")
        return dims  # type: ignore[return-value]

    def tensor(self, what: str = "a tensor") -> Tensor:
        start = self.pos
        version = self.int(f"{what} version")
        if version not in (1, 2):
            self.pos = start
            raise self.error(f"unknown tensor version {version} reading {what}")
        shape = self.dims(what)
        n = math.prod(shape)
        if version == 2:
            raw = self._take(4 * n, f"{what} values")
            values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        else:
            values = np.array([self.float(f"{what} value") for _ in range(n)], dtype=np.float32)
        return Tensor(shape, values, start)

    def alias(self, what: str = "an alias tensor") -> tuple[int, int, int, int]:
        self.expect_int(1, f"{what} version")
        return self.dims(what)
