"""Stage 1, the dataset: find or download cats_and_dogs_filtered, check and fingerprint it
(fetch, scan), make the labelled synthetic stand-in (synthetic), and decode it once into the
seeded, leak-free splits every run trains on (pipeline)."""
