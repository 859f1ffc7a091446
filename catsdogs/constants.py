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

#: The smoke rule, read by the options (a run declared smoke) and by the result sets
#: (recorded runs judged smoke): fewer epochs than this make a smoke run, as do --limit
#: and --synthetic; such numbers test the pipeline, not the models.
SMOKE_EPOCHS = 5
#: What a smoke run is told, next to the rule that defines one.
SMOKE_NOTE = (f"smoke run (--limit, --synthetic or --epochs < {SMOKE_EPOCHS}): accuracy tests "
              "the pipeline, not the models")

#: The verdicts' opt-in to step-time verdicts across machines (catsdogs.resultset.machines
#: decides; compare, trend and report --baseline take it; every output labels it).
ALLOW_DIFFERENT_MACHINES = "--allow-different-machines"
