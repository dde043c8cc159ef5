"""Anomaly detection on good parts only: a convolutional autoencoder plus separate scoring.

Stages, each in its own module (anomalib style): `model` (the network and its training losses),
`normal_set` (which images may be trained on), `scoring` (anomaly maps, image scores,
thresholds), `train`, `predict` and `evaluate` (the CLIs).
"""
