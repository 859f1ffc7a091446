"""Stage 5, verdicts: one side of a comparison (side), whether two sides trained identically
(identity), base against candidate (compare), releases in order (trend), and their text,
HTML and JSON (output)."""
