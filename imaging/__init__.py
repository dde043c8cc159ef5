"""Decoding and validating images, data-set layouts and the tf.data input pipeline."""

from imaging.decode import IMAGE_EXTENSIONS, ImageError, read_image, to_gray
from imaging.layouts import DatasetError, DatasetSpec, discover, is_normal_class
from imaging.pipeline import load_images, make_tf_dataset, prepare_cache
from imaging.preprocess import Preprocess, PreprocessError

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetError",
    "DatasetSpec",
    "ImageError",
    "Preprocess",
    "PreprocessError",
    "discover",
    "is_normal_class",
    "load_images",
    "make_tf_dataset",
    "prepare_cache",
    "read_image",
    "to_gray",
]
