"""Model passes: modules that run an encoder over examples and turn its attention into tables."""
