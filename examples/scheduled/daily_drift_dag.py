"""The daily drift check as an Airflow DAG (the monitoring guide runs Evidently this way).

Drop this file in Airflow's ``dags/`` folder next to ``daily_drift_check.sh``. The DAG runs the
script once a day for the run's date (``{{ ds }}``); a report that reaches ``DRIFT_FAIL_ON``
makes the task fail (exit 1), which is what Airflow alerts on. mlprobe needs no Airflow: this
file imports it only when it is there, so it can be imported and tested anywhere.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent / "daily_drift_check.sh"
SCHEDULE = "0 6 * * *"  # every day at 06:00, for the day before
ENV = {
    "DRIFT_PROFILE": os.environ.get("DRIFT_PROFILE", "/opt/churn/churn-v3.profile.json"),
    "DRIFT_DATA_DIR": os.environ.get("DRIFT_DATA_DIR", "/data/churn/daily"),
    "DRIFT_REPORT_DIR": os.environ.get("DRIFT_REPORT_DIR", "/data/churn/drift-reports"),
    "DRIFT_FAIL_ON": "critical",
}


def bash_command() -> str:
    """The task's command: the cron script for the run's logical date."""
    # A trailing space stops Airflow from treating a path ending in .sh as a Jinja template.
    return f"{SCRIPT} {{{{ ds }}}} "


def build_dag() -> Any:
    """The Airflow DAG object (needs apache-airflow)."""
    from airflow import DAG
    from airflow.operators.bash import BashOperator

    with DAG("mlprobe_daily_drift", schedule=SCHEDULE, start_date=datetime(2026, 1, 1),
             catchup=False, tags=["mlprobe", "drift"],
             default_args={"retries": 1, "retry_delay": timedelta(minutes=10)}) as dag:
        BashOperator(task_id="drift_check", bash_command=bash_command(),
                     env=ENV, append_env=True)
    return dag


try:
    import airflow  # noqa: F401
except ImportError:  # no Airflow here: the module still imports (and is tested)
    dag = None
else:
    dag = build_dag()
