"""Writing a command's ``--output`` file: whole or not at all, and never replacing
anything that is not a regular file."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lm_eval_monkeys.errors import MonkeysError


@contextmanager
def writable_output(output: Path) -> Iterator[Path]:
    """A path to write ``output``'s content to. A regular (or new) file is written to a
    temporary file beside it and renamed into place when the block succeeds; a device,
    FIFO or symlink (``/dev/null``, a pipe, a link to elsewhere) is written through."""
    try:
        if os.path.islink(output):  # written through, wherever it points
            yield output
            return
        mode = os.stat(output).st_mode if os.path.exists(output) else None
        if mode is not None and stat.S_ISDIR(mode):
            raise MonkeysError(f"--output {output} is a directory; name a file in it")
        if mode is not None and not stat.S_ISREG(mode):  # a device or a FIFO
            yield output
            return
        parent = output.parent if str(output.parent) else Path(".")
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=parent, prefix=f".{output.name}.", suffix=".partial")
        os.close(fd)
    except OSError as err:
        raise MonkeysError(
            f"cannot write {output}: {err.strerror}; choose a writable --output"
        ) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    except OSError as err:
        raise MonkeysError(
            f"cannot write {output}: {err.strerror}; choose a writable --output"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
