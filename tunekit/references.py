"""Import and call the user's code named in a config (``package.module:attr``).

References resolve relative to the config file's folder first, then installed packages. Anything
the user's code raises is re-raised as :class:`~tunekit.errors.UserCodeError` naming the
reference and the user's own file and line, never as a traceback from deep inside tunekit.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunekit.errors import ConfigError, UserCodeError


#: The module prefixes :func:`resolve` may import (innermost :func:`allowed_code` block), or
#: None for any: a config the user runs is theirs to trust; a config read from a shared
#: database (a distributed worker's) is not.
_ALLOWED: list[tuple[str, ...] | None] = [None]


@contextmanager
def allowed_code(prefixes: Sequence[str] | None) -> Iterator[None]:
    """Within the block, :func:`resolve` imports only modules named by ``prefixes`` (``pkg``
    allows ``pkg`` and ``pkg.sub``; None allows any) and refuses the rest with a ConfigError
    naming ``--allow-code``."""
    _ALLOWED.append(None if prefixes is None else tuple(prefixes))
    try:
        yield
    finally:
        _ALLOWED.pop()


def _check_allowed(module_name: str, where: str) -> None:
    allowed = _ALLOWED[-1]
    if allowed is None or any(module_name == p or module_name.startswith(p + ".")
                              for p in allowed):
        return
    top = module_name.split(".")[0]
    raise ConfigError("--allow-code", f"{where} names code in module {module_name!r}, which this "
                                      f"process may not import (allowed: "
                                      f"{', '.join(allowed) or 'nothing'}); if you trust it, add "
                                      f"--allow-code {top}")


def _forget_foreign(module_name: str, base_dir: Path) -> None:
    """Drop a cached module of the same name imported from elsewhere (e.g. another example's
    ``data.py``), so the config's own folder wins."""
    top = module_name.split(".")[0]
    cached = sys.modules.get(top)
    local = (base_dir / f"{top}.py").exists() or (base_dir / top / "__init__.py").exists()
    if cached is not None and local:
        origin = getattr(cached, "__file__", None) or ""
        if not Path(origin).resolve().is_relative_to(base_dir.resolve()):
            for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
                del sys.modules[name]


def resolve(ref: str, base_dir: Path, where: str) -> Any:
    """The object ``ref`` names; ``where`` is the YAML path used in errors."""
    module_name, _, attr = ref.partition(":")
    _check_allowed(module_name, where)
    base = str(base_dir.resolve())
    _forget_foreign(module_name, base_dir)
    sys.path.insert(0, base)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(where, f"cannot import module {module_name!r}: no {exc.name}.py in "
                                     f"{base} and no installed package of that name") from exc
        raise UserCodeError(f"{where}: importing {module_name!r} failed: {_located(exc)}") from exc
    except Exception as exc:
        raise UserCodeError(f"{where}: importing {module_name!r} failed: {_located(exc)}") from exc
    finally:
        if sys.path and sys.path[0] == base:
            sys.path.pop(0)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(obj) if not n.startswith("_"))
            raise ConfigError(where, f"{module_name!r} has no attribute {part!r}; it has: "
                                     f"{', '.join(public[:20]) or 'nothing public'}")
        obj = getattr(obj, part)
    return obj


def _located(exc: BaseException) -> str:
    """``Type: message (at file:line)`` pointing at the innermost frame of the user's code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/tunekit/" not in f.filename.replace("\\", "/")]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def call_user(fn: Callable[..., Any], *args: Any, what: str) -> Any:
    """Call user code; anything it raises becomes a :class:`UserCodeError` that says ``what``."""
    try:
        return fn(*args)
    except Exception as exc:
        raise UserCodeError(f"{what} raised {_located(exc)}") from exc


def data_source(obj: Any, what: str) -> Iterable[Any]:
    """A dataloader-like object from a reference: iterables are used as they are, a function
    (e.g. ``calib_loader``) is called once with no arguments to make one."""
    if callable(obj) and not hasattr(obj, "__iter__"):
        obj = call_user(obj, what=what)
    if not hasattr(obj, "__iter__"):
        raise ConfigError(what, f"must be iterable (a dataloader or a list of batches), or a "
                                f"function returning one; got {type(obj).__name__}")
    return obj
