"""The command line: a thin shell over the library, the operator's verified channel."""
