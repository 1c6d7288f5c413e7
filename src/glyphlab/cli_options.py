"""The options the ``glyphlab`` commands share, and ``glyphlab serve``'s many, declared once as Typer aliases.

A declaration is a type, a flag and its help text; keeping them here leaves ``cli.py`` the commands themselves
(each reads as its signature and the use case it calls), and lets two commands that take ``--data-dir`` or
``--dataset-option`` say the same thing about it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# -- shared by several commands ------------------------------------------------------------------------------------
DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="GLYPHLAB_DATA", help="Where downloaded datasets live (default: user cache)."),
]
DatasetOptions = Annotated[
    list[str],
    typer.Option(
        "--dataset-option",
        help="KEY=VALUE for the dataset loader (repeatable), e.g. limit=300 (every "
        "dataset), labels_path=labels.csv for an images CSV, pixel_max=255 for a CSV, or for an image folder "
        "preprocess=as-given, polarity=dark-on-light, size=28, box=20, crop_to_ink=false.",
    ),
]
Variants = Annotated[
    str,
    typer.Option("--variant", help="Variants applied in order, e.g. 'rotate:-180:180,subset:3000,blur-filter'."),
]
Track = Annotated[
    str | None,
    typer.Option(
        "--track",
        help="Also log to an experiment tracker: mlflow or tensorboard (extras glyphlab\\[mlflow], "
        "glyphlab\\[tensorboard]). Setting GLYPHLAB_TRACKING_URI alone means mlflow.",
    ),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow store or server (default $GLYPHLAB_TRACKING_URI, then $MLFLOW_TRACKING_URI, else "
        "sqlite:///./mlflow.db; http://HOST:PORT for a server; the experiment is $MLFLOW_EXPERIMENT_NAME "
        "or glyphlab), or TensorBoard's log folder (default RUN/tensorboard).",
    ),
]
ModelFolder = Annotated[Path, typer.Argument(help="A saved model folder (or a run's models/NAME folder).")]


# -- glyphlab serve's options (aliases keep serve_cmd one screen long) -------------------------------------------
ServeHost = Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 to accept outside connections).")]
ServePort = Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one).")]
ServeWorkers = Annotated[
    int,
    typer.Option(
        min=1, help="Worker processes (each loads the model; with 2 or more, the supervising process does not)."
    ),
]
ServeMaxBodyMb = Annotated[float, typer.Option(min=0.001, help="Largest request body in MB (413 above).")]
ServeMaxConcurrency = Annotated[
    int,
    typer.Option(
        min=1,
        help="Requests processed at once per worker (memory "
        "grows with it: each can take ~180 MB for 4.7 MB of "
        "dense JSON pixels, ~35 MB for a 4-Mpx image upload; "
        "bench/request_memory.py).",
    ),
]
ServeMaxQueue = Annotated[
    int,
    typer.Option(
        min=0,
        help="Most requests waiting per worker, and no more than the "
        "measured service time lets start within --queue-timeout; "
        "beyond, 503 + Retry-After.",
    ),
]
ServeMaxBufferedMb = Annotated[
    float | None,
    typer.Option(
        min=0.001,
        help="Most MB the bodies of all requests "
        "in a worker may hold together (default 16 x "
        "--max-body-mb); beyond, 503 + Retry-After.",
    ),
]
ServeRateLimit = Annotated[
    float | None,
    typer.Option(
        min=0.001,
        help="Requests per second one client (IP "
        "address) may send, in bursts of up to twice that; "
        "beyond, 429 + Retry-After (default: no limit).",
    ),
]
ServeQueueTimeout = Annotated[float, typer.Option(min=0.001, help="Seconds a request may wait (then 503).")]
ServeBodyTimeout = Annotated[
    float,
    typer.Option(
        min=0.001,
        help="Seconds a request body may take to arrive after "
        "its headers (then 408); a request takes a slot "
        "only once its body is here.",
    ),
]
ServeHeaderTimeout = Annotated[
    float,
    typer.Option(min=0.001, help="Seconds a connection may take to send a request's headers (then it is closed)."),
]
ServeMicroBatch = Annotated[
    int, typer.Option(min=1, help="Most images of concurrent requests predicted together (1: no micro-batching).")
]
ServeBatchWaitMs = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1000.0,
        help="How long the first request of a "
        "micro-batch waits for others (ms): under load less CPU per "
        "request, when idle that much more latency.",
    ),
]
ServeMaxPixels = Annotated[int, typer.Option(help="Largest image in pixels (400 above).")]
ServeMaxBatch = Annotated[int, typer.Option(help="Most images in one JSON batch.")]
ServeBackend = Annotated[str, typer.Option(help="auto | onnx | native")]
ServeThreads = Annotated[
    int,
    typer.Option(
        min=0, help="Inference threads per worker (0: all cores; 1 keeps latency low under concurrent requests)."
    ),
]
ServeExposeDetails = Annotated[
    bool,
    typer.Option(
        "--expose-details",
        help="GET /model also shows file paths, "
        "library versions and the training data's path (withheld "
        "by default: the server answers strangers).",
    ),
]
ServeAccessLog = Annotated[
    bool,
    typer.Option(
        "--access-log/--no-access-log",
        help="A log line per request (uvicorn's access log); without it a small upload costs ~0.1 ms less CPU.",
    ),
]
ServeApiKeyFile = Annotated[
    Path | None,
    typer.Option(
        help="A file whose first line is the API key every route but /health, / (and /metrics) needs as "
        "'Authorization: Bearer KEY' (default $GLYPHLAB_API_KEY; none: no key)."
    ),
]
ServeCorsOrigin = Annotated[
    list[str],
    typer.Option(
        "--cors-origin", help="An origin allowed to call the API from a browser (repeatable); none: CORS off."
    ),
]
ServeMetrics = Annotated[bool, typer.Option("--metrics/--no-metrics", help="Prometheus metrics at /metrics.")]
ServeMetricsPublic = Annotated[
    bool, typer.Option("--metrics-public/--metrics-private", help="Whether /metrics is open without the API key.")
]
