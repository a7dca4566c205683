"""One module per rules file: each job takes one typed parameter object and only wires the library."""
