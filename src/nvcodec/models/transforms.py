"""Analysis and synthesis transforms between a map at 1/2 and a latent at 1/16 of the frame size."""

from __future__ import annotations

from torch import nn

from nvcodec.models.blocks import Down, Up, conv1x1, conv3x3, stage


class Analysis(nn.Sequential):
    """cin channels at 1/2 -> cout channels at 1/16, through the four widths."""

    def __init__(self, cin: int, widths: tuple[int, int, int, int], blocks: int, cout: int) -> None:
        w0, w1, w2, w3 = widths
        super().__init__(conv3x3(cin, w0), stage(w0, blocks))
        for a, b in ((w0, w1), (w1, w2), (w2, w3)):
            self.extend([Down(a, b), stage(b, blocks)])
        self.append(conv1x1(w3, cout))


class Synthesis(nn.Sequential):
    """cin channels at 1/16 -> cout channels at 1/2, the mirror of Analysis."""

    def __init__(self, cin: int, widths: tuple[int, int, int, int], blocks: int, cout: int) -> None:
        w0, w1, w2, w3 = widths
        super().__init__(conv1x1(cin, w3), stage(w3, blocks))
        for a, b in ((w3, w2), (w2, w1), (w1, w0)):
            self.extend([Up(a, b), stage(b, blocks)])
        self.append(conv3x3(w0, cout))
