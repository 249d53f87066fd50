"""A pickle reader that can build only the handful of objects Planetoid files hold.

The Planetoid raw files are Python-2 pickles, and unpickling runs whatever callables
the file names. A downloaded or tampered file could name ``os.system``, so every
global a file asks for is checked against :data:`ALLOWED_GLOBALS`; anything else is
refused before it is imported.

Sparse matrices are rebuilt as :class:`CsrRecord` rather than ``scipy.sparse``
objects: their pickled state is only three numpy arrays and a shape, so reading raw
files needs numpy alone and scipy stays out of the runtime dependencies.
"""
from __future__ import annotations

import collections
import io
import pickle
from typing import Any, Callable, Dict, Tuple

import numpy as np

__all__ = ["ALLOWED_GLOBALS", "CsrRecord", "RestrictedUnpickler", "safe_loads"]


class CsrRecord:
    """Stand-in for a pickled ``scipy.sparse.csr_matrix``: keeps its state, nothing else.

    Unpickling sets ``indptr``, ``indices``, ``data`` and ``_shape`` (plus scipy's
    bookkeeping flags) on the instance; :meth:`to_dense` turns them into an array.
    """

    def __setstate__(self, state: Dict[str, Any]) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f"csr_matrix state must be a dict, got {type(state).__name__}")
        self.__dict__.update(state)

    @property
    def shape(self) -> Tuple[int, int]:
        shape = self.__dict__.get("_shape", self.__dict__.get("shape"))
        if shape is None or len(shape) != 2:
            raise ValueError(f"csr_matrix state has no 2-D shape (keys: {sorted(self.__dict__)})")
        return int(shape[0]), int(shape[1])

    def to_dense(self, dtype: np.dtype = np.float32) -> np.ndarray:
        """Dense ``[rows, cols]`` array; repeated entries are summed, as scipy does."""
        rows, cols = self.shape
        indptr = np.asarray(self.indptr, dtype=np.int64)
        indices = np.asarray(self.indices, dtype=np.int64)
        data = np.asarray(self.data)
        if indptr.shape != (rows + 1,) or indices.shape != data.shape or indptr[-1] != indices.size:
            raise ValueError(
                f"inconsistent csr_matrix: shape {(rows, cols)}, indptr {indptr.shape}, "
                f"indices {indices.shape}, data {data.shape}")
        if indices.size and (indices.min() < 0 or indices.max() >= cols):
            raise ValueError(f"csr_matrix column index outside [0, {cols})")
        out = np.zeros((rows, cols), dtype=dtype)
        row = np.repeat(np.arange(rows, dtype=np.int64), np.diff(indptr))
        np.add.at(out, (row, indices), data.astype(dtype))
        return out


# numpy pickles arrays through ``numpy.core.multiarray._reconstruct``; take the function
# from an array's own reduce tuple so numpy 2 never warns about the old module path.
_reconstruct: Callable[..., Any] = np.zeros(0).__reduce__()[0]

ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("scipy.sparse.csr", "csr_matrix"): CsrRecord,
    ("collections", "defaultdict"): collections.defaultdict,
    ("__builtin__", "list"): list,  # the adjacency dict's default factory
}
"""Exactly the globals the Planetoid ``ind.*`` files request, mapped to what builds them."""


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED_GLOBALS`.

    Args:
        file: binary stream to read.
        source: name used in error messages (usually the file path).
    """

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1")  # Python-2 str -> bytes-preserving
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in ALLOWED_GLOBALS)
            raise pickle.UnpicklingError(
                f"{self.source}: refused to load global '{module}.{name}'; Planetoid files "
                f"only need {allowed}. The file is corrupt or was tampered with: delete it "
                f"and fetch a fresh copy.") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"{self.source}: persistent ids are not allowed (got {pid!r})")


def safe_loads(data: bytes, source: str) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; ``source`` names it in errors."""
    return RestrictedUnpickler(io.BytesIO(data), source).load()
