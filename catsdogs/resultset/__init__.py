"""Stage 3, result sets: the on-disk format (schema), the append-only writer (store), the
one checking loader (load), where outputs may go (outputs), which runs may share a row
(comparable), whether two sides' step times compare (machines), and what a set of runs
covers, in words (describe)."""
