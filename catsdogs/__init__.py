"""catsdogs-bench: the four CNNs of "Convolutional Neural Networks in TensorFlow",
benchmarked reproducibly on cats_and_dogs_filtered."""

__version__ = "0.1.0"
