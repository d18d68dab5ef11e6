"""Success counting: what each figure means (`definitions`), how SQL counts it (`query`), and the
rollup that keeps a year of messages fast to count (`rollup`)."""
