"""MindSpore callbacks of the recipe, for scripts that drive ``ms.train.Model`` themselves.

The recipe's own trainer (:func:`lrd_mindspore.train.fit`) already logs per step/epoch (loss,
accuracy, step time, images/s, progress bar), evaluates, checkpoints atomically and switches
freezing phases; these are the stand-alone pieces.
"""
import time

from mindspore.train import Callback


class EvalCallBack(Callback):
    """Evaluate ``net`` on ``data`` every ``interval`` epochs and keep the history."""

    def __init__(self, net, data, interval=1, log=print):
        super().__init__()
        from lrd_mindspore.train import evaluate
        self.net, self.data, self.interval, self.log, self._evaluate = net, data, interval, log, evaluate
        self.history = []

    def on_train_epoch_end(self, run_context):
        epoch = run_context.original_args().cur_epoch_num
        if epoch % self.interval == 0:
            acc = self._evaluate(self.net, self.data)
            self.net.set_train(True)
            self.history.append((epoch, acc))
            self.log(f"epoch {epoch}: eval accuracy {acc:.4f}")


class StepTimeMonitor(Callback):
    """Log loss, step time and images/s every ``every`` steps."""

    def __init__(self, batch_size, every=50, log=print):
        super().__init__()
        self.batch_size, self.every, self.log = batch_size, every, log
        self.t0 = 0.0

    def on_train_step_begin(self, run_context):
        self.t0 = time.perf_counter()

    def on_train_step_end(self, run_context):
        p = run_context.original_args()
        if p.cur_step_num % self.every == 0:
            dt = time.perf_counter() - self.t0
            out = p.net_outputs[0] if isinstance(p.net_outputs, (tuple, list)) else p.net_outputs
            self.log(f"epoch {p.cur_epoch_num} step {p.cur_step_num}: loss {float(out.asnumpy()):.4f} "
                     f"{1000 * dt:.1f} ms/step {self.batch_size / dt:.0f} img/s")
