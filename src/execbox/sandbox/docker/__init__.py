"""The Docker backend: one container per stage, through the Docker Engine API."""

from execbox.sandbox.docker.sandbox import DockerSandbox

__all__ = ["DockerSandbox"]
