"""Image files: the existence check and the loader the datasets of :mod:`ltml.data` share."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image


def load_image(
    path: Path,
    transform: Callable[[Any], Any] | None,
    loader: Callable[[Path], Any] | None = None,
) -> Any:
    """Open an image with ``loader`` (default: PIL as RGB, file closed), apply ``transform``."""
    if loader is None:
        with Image.open(path) as im:
            image: Any = im.convert("RGB")
    else:
        image = loader(path)
    return image if transform is None else transform(image)


def check_images_exist(folder: Path, file_names: Sequence[str], name: str, source: str) -> None:
    """Raise naming the missing files and where they were listed; one directory listing."""
    if not folder.is_dir():
        raise FileNotFoundError(f"`{name}`: image folder {folder} not found")
    present = set(os.listdir(folder))
    missing = [f for f in file_names if f not in present]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise FileNotFoundError(
            f"`{name}`: {len(missing)} image(s) listed by {source} not found in {folder}: "
            + ", ".join(str(folder / f) for f in missing[:3])
            + more
        )
