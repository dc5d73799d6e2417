"""A one-line progress bar per epoch on an interactive terminal (events done, events/second, ETA).

When the output is not a terminal (a log file, CI, a TFX executor) nothing is drawn: training then logs one line
per epoch (and a line every ``log_every_s`` seconds of a long epoch).

Example:
  >>> bar = EpochBar(epoch=0, n_epochs=10, total_events=70_000)
  >>> bar.update(done_events=35_000, seconds=1.2)     # \\repoch 1/10 [##########··········] 35,000/70,000 ...
  >>> bar.close()
"""
import sys


def interactive(stream=None) -> bool:
    """Whether ``stream`` (default stderr) is an interactive terminal."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class EpochBar:
    """Draws ``epoch i/n [####····] done/total events, events/s, ETA`` in place on ``stream``."""

    def __init__(self, epoch: int, n_epochs: int, total_events: int, stream=None, width: int = 30):
        self.epoch, self.n_epochs, self.total = epoch, n_epochs, max(int(total_events), 1)
        self.stream, self.width = stream or sys.stderr, width

    def line(self, done_events: int, seconds: float) -> str:
        done = min(int(done_events), self.total)
        filled = int(self.width * done / self.total)
        rate = done / seconds if seconds > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        return (f"epoch {self.epoch + 1}/{self.n_epochs} [{'#' * filled}{'.' * (self.width - filled)}] "
                f"{done:,}/{self.total:,} events, {rate:,.0f} events/s, ETA {eta:.0f} s")

    def update(self, done_events: int, seconds: float) -> None:
        self.stream.write("\r" + self.line(done_events, seconds) + "\033[K")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\033[K")
        self.stream.flush()
