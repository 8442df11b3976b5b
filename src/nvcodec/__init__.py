"""nvcodec: a neural video codec with a parse-exact, versioned bitstream."""

__version__ = "0.2.0"
