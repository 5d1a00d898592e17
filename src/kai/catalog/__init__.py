"""The catalog: categories with typed property schemas, and the materials filed under them."""
