"""The notebooks execute headless at a small size (CI), so they can never silently rot.

The real-samples, composition and claims notebooks start the embedded vLLM with the small models, so this is
``live``. The claims notebook reads the shared data sets (``../shared/data`` or ``$TTC_DATA_DIR``).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.live
@pytest.mark.parametrize("name", ["01_theory.ipynb", "02_real_samples.ipynb", "03_compose.ipynb", "04_claims.ipynb"])
def test_notebook_executes_at_small_size(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_NOTEBOOK_SIZE", "small")
    monkeypatch.setenv("TTC_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setenv("TTC_POOL_PATH", str(tmp_path / "pool.sqlite"))
    monkeypatch.setenv("TTC_EVAL_DIR", str(tmp_path / "eval"))
    monkeypatch.setenv(
        "TTC_CLAIMS_DIR", str(tmp_path / "claims")
    )  # 04: its pools are built, not the committed ones read
    if (DATA := NOTEBOOKS.parents[1] / "shared" / "data").is_dir():
        monkeypatch.setenv("TTC_DATA_DIR", str(DATA))
    monkeypatch.setenv("PYTHONPATH", str(NOTEBOOKS.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    assert sorted(p.name for p in (tmp_path / "figures").iterdir())  # the plots were saved as files
