"""OPC UA: live capture into the catalog, historian backfill, and a plant simulator (asyncua).

asyncua is imported only inside these modules' functions, so importing the package is cheap.
"""

from ._mapping import DEFAULT_MAPPING, PathMapping, Variable
from ._security import OpcUaError, Security, read_password
from .capture import Capture, CaptureOptions, CaptureStats, gaps
from .simulator import PlantSimulator, SimulatorOptions

__all__ = ["Capture", "CaptureOptions", "CaptureStats", "DEFAULT_MAPPING", "OpcUaError", "PathMapping",
           "PlantSimulator", "Security", "SimulatorOptions", "Variable", "gaps", "read_password"]
