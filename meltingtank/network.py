"""The LSTM: a window of scaled readings in, the NG probability of its last row out."""

from __future__ import annotations

import keras
from keras import layers


def build_lstm(window: int, n_features: int, units: int = 32, dropout: float = 0.2) -> keras.Model:
    """Reference-style recurrent classifier; named layers, no Lambda (safe-mode loadable)."""
    inputs = keras.Input(shape=(window, n_features), name="readings")
    x = layers.LSTM(units, name="lstm")(inputs)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(16, activation="relu", name="dense")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="ng_probability")(x)
    return keras.Model(inputs, outputs, name="melting_lstm")
