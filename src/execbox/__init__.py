"""execbox: a code-execution microservice that runs untrusted snippets in a sandbox."""

__version__ = "0.1.0"
