"""gram-hf: fast fine-tuning of pre-trained language models as item encoders (GRAM, NAACL 2022) on the HF stack."""

from transformers import AutoConfig, AutoModel

# Tasks register their heads on import (the engine never imports a task).
from . import tasks  # noqa: E402, I001
from .adapters import LoraArguments, build_lora_config
from .configuration import GramConfig
from .data import InteractionData
from .export import push_encoder_to_hub, save_encoder
from .heads import HEAD_REGISTRY, GramHead, HeadOutput, get_head_class, register_head
from .inference import GramRecommender
from .item_table import ItemTable
from .items import ItemCatalog
from .modeling import ContentEncoder, GramModel, GramPreTrainedModel, default_encoder_path
from .retrieval import ItemIndex, exact_top_k
from .task_registry import TASK_REGISTRY, GramTask, get_task, register_task
from .trainer import GramTrainer
from .training_args import GramTrainingArguments
from .training_modes import expand_occurrences
from .version import __version__ as __version__
from .windows import GramWindowSchedule

AutoConfig.register("gram", GramConfig, exist_ok=True)
AutoModel.register(GramConfig, GramModel, exist_ok=True)

__all__ = [
    "HEAD_REGISTRY",
    "TASK_REGISTRY",
    "ContentEncoder",
    "GramConfig",
    "GramHead",
    "GramModel",
    "GramPreTrainedModel",
    "GramRecommender",
    "GramTask",
    "GramTrainer",
    "GramTrainingArguments",
    "GramWindowSchedule",
    "HeadOutput",
    "InteractionData",
    "ItemCatalog",
    "ItemIndex",
    "ItemTable",
    "LoraArguments",
    "build_lora_config",
    "default_encoder_path",
    "exact_top_k",
    "expand_occurrences",
    "get_head_class",
    "get_task",
    "push_encoder_to_hub",
    "register_head",
    "register_task",
    "save_encoder",
    "tasks",
]
