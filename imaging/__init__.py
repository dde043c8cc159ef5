"""Decoding and validating images, data-set layouts and the tf.data input pipeline."""

from imaging.decode import (
    IMAGE_EXTENSIONS,
    DecodedImage,
    ImageError,
    decode_image,
    image_size,
    read_file_bytes,
    read_image,
    to_gray,
)
from imaging.layouts import DatasetError, DatasetSpec, discover, is_normal_class
from imaging.pipeline import load_images, make_tf_dataset, prepare_cache
from imaging.preprocess import Preprocess, PreprocessError

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetError",
    "DecodedImage",
    "DatasetSpec",
    "ImageError",
    "Preprocess",
    "PreprocessError",
    "decode_image",
    "discover",
    "image_size",
    "is_normal_class",
    "load_images",
    "make_tf_dataset",
    "prepare_cache",
    "read_file_bytes",
    "read_image",
    "to_gray",
]
