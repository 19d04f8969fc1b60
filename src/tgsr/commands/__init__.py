"""CLI subcommands: thin wrappers over the library functions. See ``tgsr.cli``."""
