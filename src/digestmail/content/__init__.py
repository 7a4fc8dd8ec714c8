"""Issue content: the model, the source parser and checker, and the archive importer."""
