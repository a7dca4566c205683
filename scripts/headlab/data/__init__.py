"""Inputs: the GLUE registry and reading, FrameNet, spaCy features and their word-piece alignment."""
