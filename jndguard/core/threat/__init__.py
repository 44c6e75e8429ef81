"""The threat matrix (docs/design.md §4): recognisers × crop conventions × re-encodings ×
references. Qt-free; see :mod:`jndguard.core.threat.matrix` for the API."""

from jndguard.core.threat.conventions import CROPS, DETECTORS, KERNELS
from jndguard.core.threat.encodings import ENCODINGS
from jndguard.core.threat.matrix import (
    FULL,
    QUICK,
    SIZES,
    MatrixEntry,
    MatrixReport,
    MatrixSize,
    ReferencePhotos,
    ThreatMatrix,
    evaluate_matrix,
    format_grid,
)

__all__ = ["CROPS", "DETECTORS", "ENCODINGS", "FULL", "KERNELS", "QUICK", "SIZES", "MatrixEntry",
           "MatrixReport", "MatrixSize", "ReferencePhotos", "ThreatMatrix", "evaluate_matrix",
           "format_grid"]
