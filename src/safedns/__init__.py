"""safedns: a caching, ndots-aware, storm-proof DNS stub resolver."""
