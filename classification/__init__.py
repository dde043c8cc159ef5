"""Defect classifiers: model zoo, augmentation recipes, training and batch prediction."""
