"""Every table of the application, for migrations: importing the model modules registers them."""

from engine import models as _engine_models  # noqa: F401
from engine.db import Base
from notifications import models as _notification_models  # noqa: F401
from workflows import case_closing as _case_closing  # noqa: F401
from workflows import cases as _cases  # noqa: F401
from workflows import deferrals as _deferrals  # noqa: F401
from workflows import evaluation_config as _evaluation_config  # noqa: F401
from workflows import evaluations as _evaluations  # noqa: F401
from workflows import evidence as _evidence  # noqa: F401
from workflows import grids as _grids  # noqa: F401
from workflows import monitoring_rules as _monitoring_rules  # noqa: F401
from workflows import patrol_plans as _patrol_plans  # noqa: F401
from workflows import patrol_rounds as _patrol_rounds  # noqa: F401
from workflows import patrol_targets as _patrol_targets  # noqa: F401
from workflows import people as _people  # noqa: F401
from workflows import readings as _readings  # noqa: F401
from workflows import sources as _sources  # noqa: F401
from workflows import time_rules as _time_rules  # noqa: F401
from workflows import warnings as _warnings  # noqa: F401
from workflows import working_time as _working_time  # noqa: F401

from . import accounts as _accounts  # noqa: F401
from . import idempotency as _idempotency  # noqa: F401

metadata = Base.metadata
