"""Helper processes the benchmarks start: slow and dead sockets, the console with a probe."""
