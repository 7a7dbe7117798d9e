"""The Spark session of leadml's Spark engine, and quiet: Spark's own log at errors only.

A local run used to print some sixty lines of Spark's chatter on stderr: the start-up WARNs of
log4j (the native Hadoop library, the host's address), the console progress bars, a truncated
plan, MLflow's advice on ``env_manager`` and its download bars. None said anything a user can act
on. :func:`spark_session` starts the JVM with :data:`LOG4J2` (errors only), binds a local master to
127.0.0.1, and turns the progress bars off; the engine (:mod:`leadml.jobs.spark`) mutes MLflow's
advice. One line stays: ``WARNING: Using incubator modules: jdk.incubator.vector``, which the JVM
prints itself because Spark 4 asks for that module; no setting turns it off.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from leadml.core.errors import ConfigError

__all__ = ["LOG4J2", "column", "spark_session"]

PANDAS_3_NOTICE = "PySpark does not yet fully support pandas >= 3.0.0"

LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = stderr
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.spark.name = org.apache.spark
logger.spark.level = error
"""  # Spark's log at ERROR: its start-up WARNs (native Hadoop, hostname) say nothing a user can act on


def spark_session(master: str | None = None, app_name: str = "leadml", conf: dict[str, str] | None = None):
    """The Spark session (created once per process): ``master``, else ``SPARK_MASTER``, else ``local[2]``.

    ``conf`` adds Spark settings (``{"spark.local.dir": ...}`` for the scratch files, say).

    Raises:
        ConfigError: pyspark is not installed (``pip install leadml[spark]``) or Java is missing.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError("the Spark engine needs pyspark: pip install 'leadml[spark]'") from exc
    os.environ["PYSPARK_PYTHON"] = sys.executable  # workers must import pandas, pyarrow and leadml
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise ConfigError("the Spark engine needs Java (17 or later) on the PATH or in JAVA_HOME")
    # PySpark 4 warns, in the driver and in every Python worker, that it "does not yet fully support
    # pandas >= 3"; the engine's output is compared with the pandas engine's value for value (tests)
    warnings.filterwarnings("ignore", message=PANDAS_3_NOTICE, category=FutureWarning)
    master = master or os.environ.get("SPARK_MASTER") or "local[2]"
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # one machine: no guessing of the host's address
    with tempfile.TemporaryDirectory(prefix="leadml-log4j2-") as folder:
        log4j = Path(folder) / "log4j2.properties"  # read once, when the JVM starts
        log4j.write_text(LOG4J2)
        builder = (
            SparkSession.builder.master(master).appName(app_name)
            .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.executorEnv.PYTHONWARNINGS", f"ignore:{PANDAS_3_NOTICE}:FutureWarning")
            .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log4j.as_uri()}")
            .config("spark.sql.debug.maxToStringFields", "10000")  # plans with hundreds of features, untruncated
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.shuffle.partitions", "8")
            .config("spark.sql.legacy.parquet.nanosAsLong", "true")  # ns timestamps arrive as int64, exact
            .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")  # read back as UTC instants
        )  # fmt: skip
        for key, value in (conf or {}).items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")  # also when the session was made before, without LOG4J2
    return session


def column(name: str):
    """A column by its very name: feature names hold dots (``product_active_day.minutes__sum_7d``),
    which ``F.col`` would read as a struct field."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")
