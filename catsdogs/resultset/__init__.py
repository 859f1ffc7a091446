"""Stage 3, result sets: the on-disk format (schema), the append-only store that writes and
reads it (store), which runs may share a row (comparable), and what a set of runs covers,
in words (describe)."""
