"""Getting bytes from upstream: HTTP sessions and mirrors, the content-addressed cache, verified downloads."""
