"""The HTTP API: routes, request and response models, error mapping."""

from execbox.api.app import create_app

__all__ = ["create_app"]
