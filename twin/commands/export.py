"""`twin export`: an adapter in the formats other tools run.

    peft         adapter_model.safetensors + adapter_config.json, and twin's prompt as a
                 chat template (chat_template.jinja): transformers + peft, vLLM
    gguf         a GGUF LoRA adapter, the base model's GGUF and a Modelfile: llama.cpp, Ollama
    merged-gguf  one GGUF of base and adapter merged (F16 or Q8_0), and a Modelfile

The folder is written beside --out under a temporary name and renamed when complete:
an interrupted export leaves nothing that looks finished. Its files are the owner's
alone (0600): an adapter trained on private chats can repeat them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from tqdm import tqdm

from storage import with_database
from twin.commands.common import (
    config_options,
    db_options,
    db_path,
    is_terminal,
    json_options,
    print_json,
)
from twin.model import registry
from twin.model.checkpoints import embedded_gguf, prepare, read_config
from twin.model.errors import ExportError
from twin.model.settings import EMBEDDED, MERGED_TYPES, LoRASettings
from twin.prompt.settings import PromptSettings
from twin.prompt.templates import jinja_template, modelfile
from twin.prompt.text import Prompt
from twin.settings import Settings

FORMATS = ("peft", "gguf", "merged-gguf")
LORA_FILE, BASE_FILE, MERGED_FILE, MODELFILE, CHAT_TEMPLATE = (
    "twin-lora.gguf",
    "base.gguf",
    "twin.gguf",
    "Modelfile",
    "chat_template.jinja",
)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        parents=[config_options(), db_options(), json_options()],
        description="Write an adapter as PEFT (transformers, vLLM), as a GGUF LoRA "
        "(llama.cpp, Ollama), or merged with the base model into one GGUF.",
    )
    parser.add_argument("--adapter", type=int, metavar="ID", help="default: the active adapter")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new folder")
    parser.add_argument(
        "--type",
        choices=MERGED_TYPES,
        default="F16",
        help="merged-gguf: the matrices' type (default F16; Q8_0 is half the size)",
    )
    parser.add_argument(
        "--base-gguf",
        type=Path,
        metavar="PATH",
        help="the base model's GGUF (default: the embedded model's, which twin ships)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    # gguf, torch and litgpt: loaded for an export, not for `twin export --help`
    from gguf import GGUFReader

    from twin.model.export_gguf import write_lora, write_merged
    from twin.model.export_peft import write_peft
    from twin.model.lora_parts import lora_pairs

    out = args.out.expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not empty: choose a new folder for --out")
    adapter = with_database(db_path(args, settings), lambda db: registry.chosen(db, args.adapter))
    checkpoint = prepare(settings.model, settings.models_dir, progress=is_terminal())
    config = read_config(checkpoint)
    meta = registry.require_base(adapter, config.name)
    lora = LoRASettings(**meta["lora"])
    state = registry.load(Path(adapter.path))
    pairs = list(lora_pairs(state, config, lora))
    prompt = Prompt(PromptSettings(**meta["prompt"]))
    name = f"twin adapter {adapter.id}"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if args.format == "peft":
            write_peft(state, config, lora, work)
            (work / CHAT_TEMPLATE).write_text(jinja_template(prompt), encoding="utf-8")
        else:
            base, shipped = _base_gguf(args.base_gguf, settings, work)
            reader = GGUFReader(base)
            if args.format == "gguf":
                write_lora(pairs, lora, reader, work / LORA_FILE, name)
                text = _modelfile(prompt, f"./{BASE_FILE}" if shipped else str(base), LORA_FILE)
            else:
                with tqdm(
                    total=len(reader.tensors),
                    desc="merge",
                    unit="tensor",
                    disable=not is_terminal(),
                ) as bar:
                    write_merged(
                        pairs, lora, reader, work / MERGED_FILE, name, args.type, bar.update
                    )
                del reader  # its memory map, before the file goes
                if shipped:
                    base.unlink()  # merged into the new file: not needed beside it
                text = _modelfile(prompt, f"./{MERGED_FILE}", None)
            (work / MODELFILE).write_text(text, encoding="utf-8")
        files = {path.name: path.stat().st_size for path in sorted(work.iterdir())}
        if out.exists():
            out.rmdir()  # empty: checked above
        os.rename(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print_json({"adapter": adapter.id, "format": args.format, "out": str(out), "files": files})
    else:
        sizes = ", ".join(f"{file} ({_size(size)})" for file, size in files.items())
        print(f"Exported adapter {adapter.id} as {args.format} to {out}: {sizes}")
    return 0


def _base_gguf(given: Path | None, settings: Settings, work: Path) -> tuple[Path, bool]:
    """The base model's GGUF, and whether it was written into the export folder: the
    one given, or the embedded model's, put together there from its packages."""
    if given is not None:
        if not given.expanduser().is_file():
            raise ExportError(f"--base-gguf {given} is not a file")
        return given.expanduser().resolve(), False
    if settings.model.checkpoint != EMBEDDED:
        raise ExportError(
            "GGUF exports need the base model as a GGUF file: twin ships one only for the "
            "embedded model; pass --base-gguf (llama.cpp's convert_hf_to_gguf.py makes one)"
        )
    return embedded_gguf(work / BASE_FILE), True


def _modelfile(prompt: Prompt, base: str, adapter: str | None) -> str:
    try:
        return modelfile(prompt, base, f"./{adapter}" if adapter else None)
    except ValueError as err:  # a prompt template a Modelfile cannot hold
        raise ExportError(str(err)) from None


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
