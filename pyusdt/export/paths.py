"""What the export side takes as a file to write."""
from __future__ import annotations

import os
from typing import Union

# A file name as text (the pictures and files name it in messages and pick
# the format by its extension).
OutputPath = Union[str, "os.PathLike[str]"]
