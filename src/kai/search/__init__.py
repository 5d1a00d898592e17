"""Search of the catalog: full-text, facets, suggestions (semantic and hybrid follow)."""
