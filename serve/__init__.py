"""The line service: FastAPI app scoring parts one request at a time, micro-batched into the
inspection pipeline, every part in the review log, live alerts over a WebSocket.

`serve.app.create_app(Settings(...))` builds the app; `python -m serve` runs it with uvicorn.
"""
