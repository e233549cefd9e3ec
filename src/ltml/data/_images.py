"""Opening images: the one loader every dataset of :mod:`ltml.data` shares."""

from __future__ import annotations

from collections.abc import Callable
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
