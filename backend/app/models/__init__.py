"""ORM models. Importing this package registers every table on Base.metadata."""

from app.models.audit import ChangeLog
from app.models.base import Base
from app.models.curation import GeneCuration
from app.models.evidence import EvidenceTier, GeneEvidence
from app.models.gene import Gene
from app.models.pipeline import PipelineRun
from app.models.progress import DataSourceProgress
from app.models.settings import AppSetting
from app.models.static_content import (
    StaticContentGene,
    StaticContentPanel,
    StaticContentProvider,
)
from app.models.user import User

__all__ = [
    "AppSetting",
    "Base",
    "ChangeLog",
    "DataSourceProgress",
    "EvidenceTier",
    "Gene",
    "GeneCuration",
    "GeneEvidence",
    "PipelineRun",
    "StaticContentGene",
    "StaticContentPanel",
    "StaticContentProvider",
    "User",
]
