"""Shanghai-Hong Kong connect gateway."""

__version__ = "0.1.0"
