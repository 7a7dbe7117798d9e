"""Score a stream of events with the batch job's scorer on Spark Structured Streaming.

Event files (JSON lines, CSV with a header, or Parquet: ``lead_id``, ``timestamp`` in ISO 8601,
``event_type``, any attributes) dropped into ``--events-in`` are read as they come; each
micro-batch's events are stored, the leads they touch rescored exactly as ``leadml score --as-of``
scores them, and the scores and tier-crossing alerts appended under ``--out``
(:mod:`leadml.jobs.spark_stream`). Move finished files into the folder (a rename), never write them
there in place: Spark may list a file before it is complete.

    python examples/spark_streaming.py pipelines/demo.yaml --model models:/leadml_demo@champion \\
        --events-in incoming/ --out stream/ --once

Kafka instead of files: replace the file source in ``stream_scores`` by

    spark.readStream.format("kafka").option("kafka.bootstrap.servers", "host:9092")
         .option("subscribe", "lead-events").load()
         .select(F.from_json(F.col("value").cast("string"), event_schema(spark, history)).alias("e"))
         .select("e.*")

(the ``spark-sql-kafka-0-10`` package on the session's ``spark.jars.packages``); the rest is the same.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", help="the pipeline YAML (its leads, events history, outcomes and settings)")
    parser.add_argument("--model", help="a models:/ URI or a model folder (default: the pipeline's champion)")
    parser.add_argument("--events-in", required=True, help="the folder watched for new event files")
    parser.add_argument("--out", required=True, help="the output folder: events/, scores/, alerts/ by batch_id")
    parser.add_argument("--leads", help="a Parquet leads table read at every micro-batch (default: the pipeline's)")
    parser.add_argument("--format", default="json", choices=["json", "csv", "parquet"], help="the event files' format")
    parser.add_argument("--schema", help="the events' columns as Spark DDL (default: the pipeline's events columns)")
    parser.add_argument("--checkpoint", help="Spark's checkpoint folder (default: OUT/_checkpoint)")
    parser.add_argument("--as-of", help="one scoring instant for every micro-batch (a replay; default: now)")
    parser.add_argument("--reasons", default="all", help="all, mql or none (default: all, as leadml serve)")
    parser.add_argument("--every", default="10 seconds", help="the micro-batch interval without --once")
    parser.add_argument("--once", action="store_true", help="process the files there now (availableNow), then stop")
    parser.add_argument("--master", help="the Spark master (default: SPARK_MASTER or local[2])")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stream; with ``--once``, print one line per micro-batch processed."""
    from leadml.core.config import load_pipeline
    from leadml.jobs.spark_stream import stream_scores

    args = parse(argv)
    summary = stream_scores(
        load_pipeline(args.pipeline),
        args.events_in,
        args.out,
        model_uri=args.model,
        leads=args.leads,
        file_format=args.format,
        schema=args.schema,
        checkpoint=args.checkpoint,
        once=args.once,
        as_of=args.as_of,
        reasons=False if args.reasons == "none" else args.reasons,
        every=args.every,
        spark_master=args.master,
    )
    for batch in summary.batches:
        print(f"batch {batch['batch_id']} at {batch['as_of']:%Y-%m-%d %H:%M:%S} UTC: {batch['events']} events, "
              f"{batch['scored']} leads rescored, {batch['alerts']} alerts")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
