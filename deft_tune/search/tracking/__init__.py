"""MLflow tracking of a search: the layout, the writer, the reader and a local server.

- :mod:`.layout`: tag and artifact names, stop reasons, the default store (imports nothing);
- :mod:`.writer`: the driver's parent run and the workers' trial runs (imports MLflow);
- :mod:`.reader`: read-only records of searches for `deft-tune inspect` and `export`;
- :mod:`.server`: an ``mlflow server`` on loopback for many concurrent trials.

Importing this package stays light; import the writer, reader or server module where needed.
"""

from deft_tune.search.tracking.layout import default_tracking_uri

__all__ = ["default_tracking_uri"]
