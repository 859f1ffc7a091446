"""The fixed facts of the task every stage shares: image size, batch size, classes, splits.

Why this module exists: each of these was written in several modules (160x160 in four of
them, one as a string), so changing one meant finding them all. Everything here is plain
Python with no imports, so any module can use it without creating an import circle.
"""

#: Height and width every image is resized to (the post's IMG_SIZE).
IMAGE_SIZE = (160, 160)
#: What the models take: IMAGE_SIZE with three colour channels.
IMAGE_SHAPE = (*IMAGE_SIZE, 3)
#: The text a result row records in its image_size column, e.g. "160x160".
IMAGE_SIZE_TEXT = f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}"
#: The post's global batch size (the default of --batch-size).
BATCH_SIZE = 32
#: Alphabetical, as Keras infers labels from folder names: label 0 = cat, 1 = dog.
CLASSES = ("cats", "dogs")
NUM_CLASSES = len(CLASSES)
#: The dataset's folders on disk.
SPLITS = ("train", "validation")
#: The splits a run trains and evaluates on (test is carved out of validation).
SPLIT_NAMES = ("train", "validation", "test")
