"""On-disk format of one activations artifact.

- ``activations.npz``: scipy CSR (real tokens x d_sae), float32 or float16 values;
- ``tokens.parquet``: one row per CSR row: prompt_id, position, token_id, token (text).
"""

from __future__ import annotations

from pathlib import Path
import polars as pl
import scipy.sparse as sp

ACTIVATIONS_FILE = "activations.npz"
TOKENS_FILE = "tokens.parquet"


def write_activations(folder: Path, activations: sp.csr_array, tokens: pl.DataFrame) -> None:
    if activations.shape[0] != tokens.height:
        raise ValueError(f"{activations.shape[0]} activation rows but {tokens.height} token rows")
    sp.save_npz(folder / ACTIVATIONS_FILE, sp.csr_array(activations), compressed=False)
    tokens.write_parquet(folder / TOKENS_FILE)


def read_activations(folder: Path) -> tuple[sp.csr_array, pl.DataFrame]:
    return sp.csr_array(sp.load_npz(folder / ACTIVATIONS_FILE)), pl.read_parquet(folder / TOKENS_FILE)

