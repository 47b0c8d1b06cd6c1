"""Command line: a thin layer over the library; it only parses options and prints."""
