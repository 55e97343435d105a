"""The run configuration's schema: one dataclass per section, each field with its default, its help text (the text
of docs/guide/config.md) and its allowed values or bounds. :mod:`vidrcnn.engine.config` loads, checks and renders it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _meta(help: str, *, choices: tuple | None = None, minimum: float | None = None, maximum: float | None = None,
          above: float | None = None, below: float | None = None) -> dict[str, Any]:
    """Field metadata: the help text of docs/guide/config.md, allowed values, bounds (``minimum`` and ``maximum``
    inclusive, ``above`` and ``below`` exclusive)."""
    return {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum, "above": above, "below": below}


def _opt(default: Any, help: str, *, choices: tuple | None = None, minimum: float | None = None,
         maximum: float | None = None, above: float | None = None, below: float | None = None) -> Any:
    """A dataclass field with an immutable default and its help text (and allowed values / bounds)."""
    return field(default=default, metadata=_meta(help, choices=choices, minimum=minimum, maximum=maximum, above=above,
                                                 below=below))


@dataclass
class DataConfig:
    """Where the videos are and how clips are cut from them."""

    root: str = _opt("data/synthetic", "Dataset root: one folder per class (UCF101 layout).")
    split_dir: str | None = _opt(
        None, "Folder with UCF101's classInd.txt, trainlistNN.txt, testlistNN.txt, or HMDB51's "
        "<class>_test_splitN.txt. None: `root/ucfTrainTestlist` or `root/testTrainMulti_7030_splits` if present, else "
        "split by the group number in the file names (docs/guide/data.md).")
    split: int = _opt(1, "UCF101 or HMDB51 split (1, 2 or 3).", choices=(1, 2, 3))
    list_file: str | list | None = _opt(  # noqa: RUF009 (the default is None; ruff sees the list type)
        None, "Annotation list (`path label` lines, 0-based labels) instead of split_dir, split like a folder; or a "
              "[train, test] pair of lists, used as given (`data.list_file=[train.txt,val.txt]`).")
    classes_file: str | None = _opt(
        None, "With list_file: class names, one per line (line k names label k); labels at or above their count are "
        "refused. None: classes are named from the folders and the labels must run 0..max without gaps.")
    num_frames: int = _opt(16, "Frames per clip (T).", minimum=1)
    sampling: str = _opt(
        "dense", "`dense`: num_frames consecutive frames `stride` apart; `segments`: TSN, one frame from each of "
        "num_frames equal segments spanning the whole video.", choices=("dense", "segments"))
    stride: int = _opt(1, "Frame step within a dense clip (unused by `segments`).", minimum=1)
    size: int = _opt(64, "Crop side in pixels (H = W).", minimum=1)
    resize: int | None = _opt(None, "Short side before cropping; None: equal to size.", minimum=1)
    flip: bool = _opt(False, "Random horizontal flip in training. Off by default: it swaps left/right motion classes.")
    num_workers: int = _opt(2, "DataLoader worker processes per training process (0: decode in the main process).",
                            minimum=0)
    backend: str = _opt("auto", "Video decoder.", choices=("auto", "pyav", "decord"))
    on_error: str = _opt("skip", "Unreadable training video: `skip` (logged, counted, replaced) or `raise`.",
                         choices=("skip", "raise"))
    max_unreadable: float = _opt(
        0.1, "With on_error=skip: stop training with an error once more than this fraction of the training videos "
        "has proved unreadable (a dataset that broken trains on another set than it claims); 1 never stops.",
        minimum=0.0)
    repeats: int = _opt(
        1, "Repeated augmentation (MMAction2's RepeatAugDataset): each training video is decoded once (the union of "
        "the clips' frames) and gives this many clips, each with its own position and augmentation. A batch holds "
        "train.batch_size videos, so batch_size x repeats clips; an epoch is still one pass over the videos (the same "
        "steps, repeats x the clips).", minimum=1)


@dataclass
class ModelConfig:
    """Which network, with which builder options."""

    name: str = _opt("rcn_gru_s", "Registered model name (`vidrcnn.models.list_models()`).")
    kwargs: dict = field(default_factory=dict, metadata=_meta(
        "Builder options passed to `get_model(name, num_classes=..., **kwargs)`, e.g. `{dropout: 0.2}`; stored in the "
        "checkpoint so the model can be rebuilt. `model.kwargs.checkpoint_every=k` (the `rcn_*` models): gradient "
        "checkpointing over time, the recurrent loop recomputed in chunks of k steps in backward (same gradients, "
        "less training memory, about one more forward; docs/guide/performance.md)."))


@dataclass
class OptimConfig:
    """The optimiser (the learning rate itself is `train.lr`)."""

    name: str = _opt("adamw", "Optimiser.", choices=("adamw", "sgd"))
    weight_decay: float = _opt(0.05, "Decoupled (AdamW) or L2 (SGD) weight decay; biases and norm weights get none.",
                               minimum=0.0)
    momentum: float = _opt(0.9, "SGD momentum.", minimum=0.0)
    nesterov: bool = _opt(False, "SGD with Nesterov momentum.")
    betas: list = field(default_factory=lambda: [0.9, 0.999], metadata=_meta("AdamW betas."))


@dataclass
class TrainConfig:
    """The training loop."""

    epochs: int = _opt(10, "Passes over the training set.", minimum=1)
    batch_size: int = _opt(16, "Global batch size in videos (split evenly across processes under torchrun); with "
                               "data.repeats=K a batch holds K clips of each, K x batch_size clips.", minimum=1)
    lr: float = _opt(1e-3, "Peak learning rate, reached after warmup.", above=0.0)
    min_lr: float = _opt(0.0, "Learning rate at the end of the cosine decay.", minimum=0.0)
    warmup_epochs: float = _opt(1.0, "Linear warmup length in epochs (fractions allowed).", minimum=0.0)
    clip_grad: float = _opt(1.0, "Clip the global gradient norm to this value; 0 disables.", minimum=0.0)
    label_smoothing: float = _opt(0.0, "Label smoothing of the cross-entropy loss.", minimum=0.0, below=1.0)
    mixup_alpha: float = _opt(
        0.0, "Mixup: blend each clip with another clip of the batch, lambda ~ Beta(alpha, alpha), one lambda for all "
        "frames; the targets become soft labels. 0: off.", minimum=0.0)
    cutmix_alpha: float = _opt(
        0.0, "CutMix: paste a box of another clip of the batch, the same box on every frame, covering 1 - lambda of "
        "the area, lambda ~ Beta(alpha, alpha); soft targets by area. 0: off. With mixup_alpha too, each mixed batch "
        "uses one of the two, at random.",
        minimum=0.0)
    mix_prob: float = _opt(1.0, "Probability that a training batch is mixed (with mixup_alpha or cutmix_alpha set).",
                           minimum=0.0, maximum=1.0)
    ema_decay: float | None = _opt(
        None, "Keep an exponential moving average of the weights (and BatchNorm statistics), updated after every "
        "step with this decay (e.g. 0.999: an average over about 1/(1 - decay) steps). Validation scores it, "
        "checkpoints store it beside the raw weights, and test/inference use it by default. None or 0: off.",
        minimum=0.0, below=1.0)
    ema_bn_batches: int = _opt(
        16, "With ema_decay: after each epoch, before the EMA is validated and checkpointed, recompute its BatchNorm "
        "statistics over this many training batches (torch.optim.swa_utils.update_bn): averaged running statistics "
        "belong to none of the averaged weights (docs/reports/training_recipe.md: 68.8% with them, 85.4% recomputed, raw weights "
        "89.0%). 0: keep the averaged statistics.", minimum=0)
    amp: bool = _opt(True, "Mixed precision on CUDA (bf16 where supported, else fp16 with a grad scaler); "
                           "no effect on CPU.")
    channels_last: bool = _opt(False, "channels_last_3d memory format for model and clips on CUDA (helps 3-D convs "
                                      "with tensor cores).")
    cuda_graph: bool = _opt(
        False, "Capture the training step (forward, loss, backward, gradient clipping, AdamW's step) as one CUDA graph "
        "after 3 eager steps and replay it for every batch of that shape (others run eagerly): one launch instead of "
        "hundreds of small kernels per step. One CUDA process, AdamW, bf16 or fp32; refused elsewhere with the reason "
        "(vidrcnn.engine.train_step). The loss is checked for divergence after the update, not before.")
    compile_step: bool = _opt(
        False, "torch.compile each recurrent cell's step, never the unrolled loop (vidrcnn.layers.compile_steps): the "
        "gate arithmetic fused into a few kernels, one compile per layer and shape whatever the clip length; the EMA "
        "copy too. Pays on a GPU, where a step is launch-bound; on the CPU the compile costs more than it saves in "
        "short runs. Results equal the eager model's to float tolerance.")
    eval_every: int = _opt(1, "Validate every N epochs (the last epoch is always validated).", minimum=1)
    device: str = _opt("auto", "`auto` (CUDA when available), `cpu`, `cuda`.", choices=("auto", "cpu", "cuda"))


@dataclass
class EvalConfig:
    """Test-time protocol used by tools/test.py (training validation always uses one centre clip per video)."""

    num_clips: int = _opt(10, "Clips per test video, evenly spaced; their scores are averaged.", minimum=1)
    three_crop: bool = _opt(False, "Three crops along the long side per clip.")
    batch_size: int = _opt(8, "Videos per test batch.", minimum=1)
    cuda_graph: bool = _opt(False, "Replay the test forward pass as CUDA graphs, one per batch shape "
                                   "(vidrcnn.engine.cuda_graphs): a recurrent model's many small kernels launched as "
                                   "one. CUDA only; the outputs equal the eager model's.")


@dataclass
class Config:
    """A whole run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = _opt(0, "Seed of everything random (init, sampling, augmentation); same seed, same CPU run.")


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "train": TrainConfig,
                             "eval": EvalConfig}
FREEFORM = {"model.kwargs"}  # dict fields whose sub-keys are not checked here (the model builder checks them)
