"""Pure functions that produce file contents. No I/O: every function takes values, returns text."""
