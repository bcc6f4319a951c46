"""The runtime: everything a generated runner module imports. It never imports `pipec.compiler`.

Generated modules import only the names in `__all__` (a test proves it), so this list is the contract
between the code generator and the runtime.
"""

from pipec.runtime.entry import add_pipe_folder, run_main, use_module_not_found
from pipec.runtime.errors import ConfigurationError, ErrorInfo, RunAborted
from pipec.runtime.policy import DROPPED
from pipec.runtime.roles import (
    BulkSink,
    Component,
    ComponentType,
    Context,
    EmptyConfig,
    Processor,
    Sink,
    Source,
    Stage,
    emits_many,
)
from pipec.runtime.runner import NodeSpec, PipelineSpec, Run, RunOptions, run_pipeline
from pipec.runtime.values import Env, Secret

__all__ = [
    "DROPPED",
    "BulkSink",
    "Component",
    "ComponentType",
    "ConfigurationError",
    "Context",
    "EmptyConfig",
    "Env",
    "ErrorInfo",
    "NodeSpec",
    "PipelineSpec",
    "Processor",
    "Run",
    "RunAborted",
    "RunOptions",
    "Secret",
    "Sink",
    "Source",
    "Stage",
    "add_pipe_folder",
    "emits_many",
    "run_main",
    "run_pipeline",
    "use_module_not_found",
]
