"""Content-defined chunking (FastCDC 2020 via the compiled ``pyfastcdc``), streaming with a bound.

The parameters are fixed per repository in ``config``; the gear table is seeded from the secret
``MasterKeys.chunker_seed`` so that cut points reveal less about the content.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import pyfastcdc

from tiervault.errors import ParameterError

ALGORITHM = "fastcdc-2020"


@dataclass(frozen=True, slots=True)
class ChunkerParams:
    """FastCDC parameters. The expected mean chunk size is about ``min_size + avg_size`` (the paper's
    cut-point skipping), so the defaults give ~0.5 MiB min, ~1 MiB mean, 8 MiB max."""

    min_size: int = 512 * 1024
    avg_size: int = 512 * 1024
    max_size: int = 8 * 1024 * 1024
    normalization: int = 1
    algorithm: str = ALGORITHM

    def validate(self) -> None:
        """Raise ``ParameterError`` (a ``UsageError`` and a ``ValueError``) unless usable."""
        if self.algorithm != ALGORITHM:
            raise ParameterError(f"unknown chunker {self.algorithm!r}")
        if not (64 <= self.min_size <= 1 << 20 and 256 <= self.avg_size <= 4 << 20):
            raise ParameterError("chunker sizes out of range")
        if not (1024 <= self.max_size <= 16 << 20):
            raise ParameterError("chunker max_size out of range")
        if not self.min_size <= self.avg_size <= self.max_size:
            raise ParameterError("chunker sizes must satisfy min_size <= avg_size <= max_size")
        if self.normalization not in (0, 1, 2, 3):
            raise ParameterError("chunker normalization must be 0..3")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ChunkerParams:
        params = cls(
            min_size=int(obj["min_size"]),
            avg_size=int(obj["avg_size"]),
            max_size=int(obj["max_size"]),
            normalization=int(obj["normalization"]),
            algorithm=str(obj["algorithm"]),
        )
        params.validate()
        return params


class Chunker:
    """One chunker per thread (``pyfastcdc.FastCDC`` is not thread-safe)."""

    def __init__(self, params: ChunkerParams, seed: int) -> None:
        params.validate()
        self.params = params
        self._cdc = pyfastcdc.FastCDC(
            params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=params.normalization,  # type: ignore[arg-type]  # validated 0..3
            seed=seed,
        )

    def chunks(self, reader: Any) -> Iterator[memoryview]:
        """Yield the chunks of a stream with ``readinto``. Each view is valid only until the next one."""
        for chunk in self._cdc.cut_stream(reader):
            yield chunk.data

    def cut(self, data: bytes | memoryview) -> Iterator[memoryview]:
        """Chunk an in-memory buffer (small files, tests)."""
        for chunk in self._cdc.cut_buf(data):
            yield chunk.data
