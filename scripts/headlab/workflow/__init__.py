"""What the Snakefile calls while it parses: config checks and the library modules each job depends on."""
