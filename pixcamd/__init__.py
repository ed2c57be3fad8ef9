"""pixcamd: camouflage photos against automatic image-quality filters (BIQA).

Data flow: photo → views → BIQA → optimizer → JPEG check → metadata → outbox.
"""

__version__ = "0.1.0"
