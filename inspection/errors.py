"""The batch pipeline's error, in a module of its own so light tools (the Ray pool CLI, the
cluster connection) raise it without importing TensorFlow."""


class InspectionError(ValueError):
    """A run or an input the batch pipeline cannot use."""
