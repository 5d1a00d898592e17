"""KAI: material recognition for organizations' catalogs."""

__version__ = "0.1.0"
