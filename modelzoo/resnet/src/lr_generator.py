"""Learning-rate schedules, ModelZoo signature (one value per step)."""
from lrd_core.schedule import SCHEDULES, epoch_schedule


def get_lr(lr_init, lr_end, lr_max, warmup_epochs, total_epochs, steps_per_epoch, lr_decay_mode="linear"):
    """Per-step LR array: warm-up lr_init -> lr_max, then ``lr_decay_mode`` down to lr_end.

    ``lr_decay_mode`` is one of ``linear``, ``cosine``, ``steps``, ``poly``, ``constant``.
    """
    return epoch_schedule(lr_decay_mode, int(total_epochs), int(steps_per_epoch), float(lr_max), float(lr_init),
                          float(lr_end), float(warmup_epochs))


__all__ = ["get_lr", "SCHEDULES"]
