"""An adapter for llama.cpp and Ollama, on the base model's own GGUF file.

Two forms, both written with gguf-py:
- a GGUF LoRA adapter (`general.type = adapter`, `adapter.type = lora`,
  `adapter.lora.alpha`; for each adapted matrix `<tensor>.lora_a` (r x in) and
  `<tensor>.lora_b` (out x r) under llama.cpp's tensor name), which llama.cpp's `--lora`
  and Ollama's `ADAPTER` apply on top of the unchanged base GGUF. llama.cpp refuses an
  adapter whose architecture, tensor names or shapes differ from the base model's:
  they are checked here against the base file before anything is written;
- the base GGUF with the adapter merged in (W + B A alpha/r), every matrix in F16 or
  Q8_0 and the norms in F32, the base file's metadata (tokenizer included) copied: one
  file for tools that take one.

The same writer puts a litgpt checkpoint's own weights into the base file's layout
(write_weights), for the llama.cpp backend to run what twin's engine runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gguf import GGUFReader, GGUFValueType, GGUFWriter, Keys, LlamaFileType
from gguf.constants import GGMLQuantizationType, GGUFType
from gguf.quants import QuantError, dequantize, quant_shape_to_byte_shape, quantize
from litgpt import Config

from twin.model.errors import ExportError
from twin.model.gguf_convert import gemma3_gguf_tensor
from twin.model.lora_parts import LoRAPair, merged_delta
from twin.model.settings import LoRASettings

_FILE_TYPES = {"F16": LlamaFileType.MOSTLY_F16, "Q8_0": LlamaFileType.MOSTLY_Q8_0}
_FLOATS = {
    GGMLQuantizationType.F32: np.dtype(np.float32),
    GGMLQuantizationType.F16: np.dtype(np.float16),
}


def gguf_tensor(pair: LoRAPair) -> str:
    """llama.cpp's name of the matrix a pair adapts."""
    return "output.weight" if pair.block is None else f"blk.{pair.block}.{pair.matrix}.weight"


def architecture(base: GGUFReader) -> str:
    field = base.fields.get(Keys.General.ARCHITECTURE)
    if field is None:
        raise ExportError("the base GGUF names no architecture (general.architecture)")
    return str(field.contents())


def _checked(pairs: Iterable[LoRAPair], base: GGUFReader) -> list[tuple[str, LoRAPair]]:
    """Each pair with its tensor name, once llama.cpp's own checks pass: the tensor is in
    the base model, as many columns as A, as many rows as B."""
    shapes = {t.name: tuple(int(d) for d in t.shape) for t in base.tensors}  # (ne0, ne1)
    named = []
    for pair in pairs:
        name = gguf_tensor(pair)
        if name not in shapes:
            if pair.block is None:
                raise ExportError(
                    "the adapter changes the output layer, which this model shares with its "
                    "embedding: llama.cpp cannot apply that (train without the 'head' target)"
                )
            raise ExportError(f"{name} is not in the base GGUF: it is another model's adapter")
        if shapes[name][:2] != (pair.a.shape[1], pair.b.shape[0]):
            raise ExportError(
                f"{name} is {shapes[name][0]} x {shapes[name][1]} in the base GGUF, the "
                f"adapter's {pair.a.shape[1]} x {pair.b.shape[0]}: another model's adapter"
            )
        named.append((name, pair))
    if not named:
        raise ExportError("the adapter holds no LoRA weights")
    return named


def write_lora(
    pairs: Iterable[LoRAPair], settings: LoRASettings, base: GGUFReader, path: Path, name: str
) -> Path:
    """The GGUF LoRA adapter of `pairs` for the model in `base`, at `path`."""
    named = _checked(pairs, base)
    writer = GGUFWriter(path, architecture(base))
    writer.add_type(GGUFType.ADAPTER)
    writer.add_name(name)
    writer.add_string(Keys.Adapter.TYPE, "lora")
    writer.add_float32(Keys.Adapter.LORA_ALPHA, float(settings.alpha))
    for tensor, pair in named:
        writer.add_tensor(f"{tensor}.lora_a", pair.a.float().contiguous().numpy())
        writer.add_tensor(f"{tensor}.lora_b", pair.b.float().contiguous().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_merged(
    pairs: Iterable[LoRAPair],
    settings: LoRASettings,
    base: GGUFReader,
    path: Path,
    name: str,
    kind: str = "F16",
    progress: Callable[[int], None] | None = None,
) -> Path:
    """`base` with the adapter merged in, every matrix as `kind` (F16 or Q8_0), at `path`."""
    deltas = {tensor: pair for tensor, pair in _checked(pairs, base)}

    def merged(tensor: Any, shape: tuple[int, ...]) -> np.ndarray:
        values = _float32(tensor, shape)
        if tensor.name in deltas:
            values += merged_delta(deltas[tensor.name], settings).numpy()
        return values

    return _write_model(base, merged, path, name, kind, progress)


def write_weights(
    state: dict[str, torch.Tensor],
    config: Config,
    base: GGUFReader,
    path: Path,
    kind: str = "F16",
    progress: Callable[[int], None] | None = None,
) -> Path:
    """`base` carrying the weights of a litgpt checkpoint of it instead of its own: for
    llama.cpp to compute with exactly what twin's engine computes with."""

    def own(tensor: Any, shape: tuple[int, ...]) -> np.ndarray:
        value = gemma3_gguf_tensor(state, config, tensor.name)
        return value.float().numpy().reshape(shape)

    return _write_model(base, own, path, f"{config.name} ({kind})", kind, progress)


def _write_model(
    base: GGUFReader,
    values_of: Callable[[Any, tuple[int, ...]], np.ndarray],
    path: Path,
    name: str,
    kind: str,
    progress: Callable[[int], None] | None,
) -> Path:
    """A model GGUF with `base`'s metadata and tensors, each tensor's values from
    `values_of`, every matrix as `kind` and the norms in F32. Written tensor by tensor,
    never the whole model in memory at once."""
    wanted = GGMLQuantizationType[kind]
    writer = GGUFWriter(path, architecture(base))
    _copy_metadata(base, writer, skip={Keys.General.NAME, Keys.General.FILE_TYPE})
    writer.add_name(name)
    writer.add_file_type(_FILE_TYPES[kind])
    plan = []
    for tensor in base.tensors:
        shape = tuple(int(d) for d in reversed(tensor.shape))  # numpy order: (rows, cols)
        if len(shape) == 1:  # norms: small, and llama.cpp keeps them in F32
            qtype = GGMLQuantizationType.F32
        else:  # rows Q8_0's blocks cannot cut evenly stay in 16 bits
            qtype = wanted if _fits(shape, wanted) else GGMLQuantizationType.F16
        plan.append((tensor, shape, qtype))
        if qtype in _FLOATS:
            nbytes = math.prod(shape) * _FLOATS[qtype].itemsize
        else:
            nbytes = math.prod(quant_shape_to_byte_shape(shape, qtype))
        writer.add_tensor_info(tensor.name, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor, shape, qtype in plan:
        writer.write_tensor_data(_encoded(values_of(tensor, shape), qtype))
        if progress is not None:
            progress(1)
    writer.close()
    return path


def _fits(shape: tuple[int, ...], qtype: GGMLQuantizationType) -> bool:
    try:
        quant_shape_to_byte_shape(shape, qtype)
    except (QuantError, ValueError):
        return False
    return True


def _float32(tensor: Any, shape: tuple[int, ...]) -> np.ndarray:
    qtype = GGMLQuantizationType(tensor.tensor_type)
    if qtype in _FLOATS:
        return np.array(tensor.data, dtype=np.float32).reshape(shape)
    return dequantize(np.asarray(tensor.data), qtype).astype(np.float32).reshape(shape)


def _encoded(values: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    if qtype in _FLOATS:
        return values.astype(_FLOATS[qtype])
    return quantize(values, qtype)


def _copy_metadata(base: GGUFReader, writer: GGUFWriter, skip: set[str]) -> None:
    """Every key of the base file (tokenizer, hyperparameters) but those GGUFWriter
    writes itself and those in `skip`, which the caller writes anew."""
    for field in base.fields.values():
        if (
            field.name == Keys.General.ARCHITECTURE
            or field.name.startswith("GGUF.")
            or field.name in skip
        ):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
