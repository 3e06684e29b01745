"""Building and running generated Dockerfiles without a Docker daemon or a registry.

The machines that test this template have Debian's podman, buildah and
mmdebstrap but no container registry, so the public base images are replaced
by local stand-ins built from what is reachable (Debian's packages, the uv
binary of this repository's PyPI wheel), passed in through the Dockerfile's
build arguments exactly as a team behind a mirror would pass its own:

- ``localhost/test-python:3.11``: Debian bookworm (minbase) with python3,
  bootstrapped by mmdebstrap. bookworm's python3 is 3.11, hence the version.
- ``localhost/test-uv``: ``FROM scratch`` with ``/uv`` and ``/uvx``, the
  layout of ``ghcr.io/astral-sh/uv``.

Both are built once and reused while they exist (and while uv's version matches).
``podman run`` does not work here (cgroups, rlimits): commands run in a built
image through ``buildah from`` + ``buildah run --isolation chroot``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

PYTHON_IMAGE = "localhost/test-python:3.11"
UV_IMAGE = "localhost/test-uv"
DEBIAN_SUITE = "bookworm"
TOOLS = ("podman", "buildah", "mmdebstrap")
# Downloads inside builds and containers go through the host's trust store.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


# What every build here needs: the stand-in base images, and the host's trust store.
BUILD_OPTIONS = (
    f"--build-arg=PYTHON_IMAGE={PYTHON_IMAGE}",
    f"--build-arg=UV_IMAGE={UV_IMAGE}",
    f"--volume={HOST_CA_BUNDLE}:{IMAGE_CA_BUNDLE}:ro",
    f"--env=SSL_CERT_FILE={IMAGE_CA_BUNDLE}",
)


def missing_tools() -> list[str]:
    """The container tools that are not installed (an empty list when all are)."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(args: Sequence[str], *, timeout: float = 900, **kwargs: object) -> str:
    result = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kwargs,  # type: ignore[arg-type]
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result.stdout


def image_exists(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name], check=False).returncode == 0


def _image_label(name: str, label: str) -> str:
    template = '{{ index .Labels "' + label + '" }}'
    return _run(["podman", "image", "inspect", "--format", template, name]).strip()


def uv_binary() -> Path:
    """The uv binary of this repository's environment (installed from uv's PyPI wheel)."""
    return Path(sys.executable).with_name("uv")


def uv_version() -> str:
    return _run([str(uv_binary()), "--version"]).split()[1]


def ensure_base_images() -> None:
    """Build the local stand-ins for the public base images, unless they exist."""
    if not image_exists(PYTHON_IMAGE):
        with tempfile.TemporaryDirectory(prefix="rootfs-") as tmp:
            rootfs = Path(tmp) / "rootfs.tar"
            _run(
                [
                    "mmdebstrap",
                    "--variant=minbase",
                    "--include=python3,python3-venv,ca-certificates",
                    DEBIAN_SUITE,
                    str(rootfs),
                ]
            )
            _run(["podman", "import", "--change", 'CMD ["python3"]', str(rootfs), PYTHON_IMAGE])
    version = uv_version()
    if not image_exists(UV_IMAGE) or _image_label(UV_IMAGE, "uv.version") != version:
        with tempfile.TemporaryDirectory(prefix="uv-image-") as tmp:
            context = Path(tmp)
            for name in ("uv", "uvx"):
                shutil.copy2(uv_binary().with_name(name), context / name)
            (context / "Containerfile").write_text("FROM scratch\nCOPY uv uvx /\n")
            _run(
                [
                    "podman",
                    "build",
                    "--isolation=chroot",
                    "--layers=false",
                    "--label",
                    f"uv.version={version}",
                    "--tag",
                    UV_IMAGE,
                    str(context),
                ]
            )


def build(context: Path, tag: str, target: str | None = None) -> str:
    """Build ``context``'s Dockerfile with the stand-in base images; return the build log."""
    args = ["podman", "build", "--isolation=chroot", *BUILD_OPTIONS, "--tag", tag]
    if target:
        args += ["--target", target]
    return _run([*args, str(context)], timeout=1200)


def _dangling_images(attempts: int = 5) -> set[str]:
    """The ids of the images no tag points to.

    podman 4.3 fails the whole listing ("image not known") when an image it
    listed is removed before it reads it, as podman's own cleanup of a finished
    build can do: list again, a few times, before giving up.
    """
    args = ["podman", "images", "--quiet", "--no-trunc", "--filter", "dangling=true"]
    for attempt in range(attempts):
        try:
            return set(_run(args).split())
        except AssertionError:
            if attempt == attempts - 1:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


@contextmanager
def built(context: Path, tag: str, target: str | None = None) -> Iterator[str]:
    """The image of ``context`` (or of its ``target`` stage), removed afterwards.

    The intermediate stage images the build leaves (a gigabyte each) go too;
    building without them (``--layers=false``) would also delete the uv image,
    whose stage has no instruction of its own (podman 4.3).
    """
    with removed_afterwards(tag):
        build(context, tag, target)
        yield tag


@contextmanager
def removed_afterwards(tag: str) -> Iterator[None]:
    """Remove image ``tag``, and the stage images left while it was built, at the end."""
    before = _dangling_images()
    try:
        yield
    finally:
        subprocess.run(["podman", "rmi", "--force", tag], capture_output=True, check=False)
        for image in sorted(_dangling_images() - before):
            subprocess.run(["podman", "rmi", image], capture_output=True, check=False)


def image_config(image: str, field: str) -> str:
    """One field of an image's OCI configuration, e.g. ``User`` or ``Cmd``."""
    template = "{{json .Config." + field + "}}"
    return _run(["podman", "image", "inspect", "--format", template, image])


class Container:
    """A working container of an image, for running commands in it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def copy(self, source: Path, destination: str, owner: str) -> None:
        _run(["buildah", "copy", "--chown", owner, self.name, str(source), destination])

    def run(
        self,
        command: Sequence[str],
        *,
        user: str | None = None,
        workdir: str | None = None,
        timeout: float = 900,
    ) -> str:
        """Run ``command`` as the image's user (or ``user``); return its output."""
        args = [
            "buildah",
            "run",
            "--isolation",
            "chroot",
            "--volume",
            f"{HOST_CA_BUNDLE}:{IMAGE_CA_BUNDLE}:ro",
            "--env",
            f"SSL_CERT_FILE={IMAGE_CA_BUNDLE}",
        ]
        if user:
            args += ["--user", user]
        if workdir:
            args += ["--workingdir", workdir]
        return _run([*args, self.name, "--", *command], timeout=timeout)


@contextmanager
def container(image: str) -> Iterator[Container]:
    """A working container of ``image``, removed afterwards."""
    name = _run(["buildah", "from", image]).strip()
    try:
        yield Container(name)
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True, check=False)
