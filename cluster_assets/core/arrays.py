"""Array types shared by the core's kernels and their callers."""

from __future__ import annotations

from typing import Any, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

_ScalarT = TypeVar("_ScalarT", bound=np.generic)

Int64Array: TypeAlias = npt.NDArray[np.int64]
Int32Array: TypeAlias = npt.NDArray[np.int32]
Float64Array: TypeAlias = npt.NDArray[np.float64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
#: int32 or int64: index arrays and counts whose width depends on the data's size
IntArray: TypeAlias = npt.NDArray[np.signedinteger[Any]]
#: float32 activations or float64 values
FloatArray: TypeAlias = npt.NDArray[np.floating[Any]]
#: a 2-D array: its shape entries are ints (an NDArray's are Any)
Array2D: TypeAlias = np.ndarray[tuple[int, int], np.dtype[_ScalarT]]
