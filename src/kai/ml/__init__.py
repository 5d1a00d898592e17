"""Training and evaluating recognition models: heads on embeddings, ensembles, metrics."""
