"""A self-contained PEP 517 build backend (standard library only) for this demo package.

Why not setuptools: the test installs the package offline with `pip install --no-build-isolation`,
which uses only what the environment already has. A venv made by Python 3.11 has setuptools 65, which
cannot build a wheel without the separate `wheel` package; Python 3.12+ venvs have no setuptools at
all. This backend needs nothing, so the install works the same everywhere. It reads the `[project]`
table of pyproject.toml (name, version, description, requires-python, dependencies, entry points)
and packs `src/<package>/` into a pure-Python wheel, or an sdist.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10: pip, which runs this backend, vendors the same parser
    from pip._vendor import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project


def _names() -> tuple[str, str, str]:
    """(distribution name, version, the name as wheel files spell it)."""
    project = _project()
    return project["name"], project["version"], re.sub(r"[-_.]+", "_", project["name"]).lower()


def _metadata() -> str:
    project = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project.get('description', '')}",
    ]
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Requires-Dist: {requirement}" for requirement in project.get("dependencies", [])]
    return "\n".join(lines) + "\n"


def _entry_points() -> str:
    sections = []
    for group, entries in _project().get("entry-points", {}).items():
        body = "".join(f"{name} = {target}\n" for name, target in entries.items())
        sections.append(f"[{group}]\n{body}")
    return "\n".join(sections)


def _package_files() -> list[tuple[str, bytes]]:
    source = ROOT / "src"
    return [
        (path.relative_to(source).as_posix(), path.read_bytes())
        for path in sorted(source.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    ]


def _dist_info(tag: str) -> list[tuple[str, bytes]]:
    _, version, wheel_name = _names()
    folder = f"{wheel_name}-{version}.dist-info"
    wheel = f"Wheel-Version: 1.0\nGenerator: demo_backend\nRoot-Is-Purelib: true\nTag: {tag}\n"
    return [
        (f"{folder}/METADATA", _metadata().encode()),
        (f"{folder}/WHEEL", wheel.encode()),
        (f"{folder}/entry_points.txt", _entry_points().encode()),
    ]


# ------------------------------------------------------------------------------------- PEP 517 hooks
def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: dict[str, Any] | None = None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: dict[str, Any] | None = None
) -> str:
    folder = ""
    for name, content in _dist_info("py3-none-any"):
        target = Path(metadata_directory) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        folder = name.split("/")[0]
    return folder


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    _, version, wheel_name = _names()
    tag = "py3-none-any"
    filename = f"{wheel_name}-{version}-{tag}.whl"
    files = _package_files() + _dist_info(tag)
    record_name = f"{wheel_name}-{version}.dist-info/RECORD"
    record = []
    with zipfile.ZipFile(Path(wheel_directory) / filename, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, content in files:
            wheel.writestr(name, content)
            digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(content)}")
        record.append(f"{record_name},,")
        wheel.writestr(record_name, "\n".join(record) + "\n")
    return filename


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    _, version, wheel_name = _names()
    base = f"{wheel_name}-{version}"
    filename = f"{base}.tar.gz"
    members = [("PKG-INFO", _metadata().encode())]
    members += [
        (path.relative_to(ROOT).as_posix(), path.read_bytes())
        for path in sorted(ROOT.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    ]
    with tarfile.open(Path(sdist_directory) / filename, "w:gz") as sdist:
        for name, content in members:
            info = tarfile.TarInfo(f"{base}/{name}")
            info.size = len(content)
            sdist.addfile(info, io.BytesIO(content))
    return filename
