"""KonCept512 (KonIQ-10k) as the MediaEval 2020 Pixel Privacy organizers ran it.

The layout follows the PyTorch port the task used (ZhengyuZhao/koniq-PyTorch): Cadene's
``pretrainedmodels`` InceptionResNetV2 with its last layer cut off, so the backbone is
``nn.Sequential`` of its 16 children (keys ``base.0`` … ``base.15``), and the ``model_qa`` head
(keys ``fc.0`` … ``fc.12``). Two details decide whether we fool the same network:

* the backbone keeps Cadene's ``AvgPool2d(8, count_include_pad=False)``. On a 384×512 view the
  feature map is 10×14, so the pool averages only the top-left 8×8 cells — the port never pooled
  globally, and neither do we;
* the input is normalized as the task did, (x − 0.5) / 0.5, not with ImageNet statistics.
"""

from __future__ import annotations

import torch
from torch import nn

from pixcamd.models.base import QualityModel, check_views, tensors_sha256

MIN_SIDE, MAX_SIDE = 299, 554  # the range the port was trained and evaluated on


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001, momentum=0.1, affine=True)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Mixed5b(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(192, 96, 1)
        self.branch1 = nn.Sequential(BasicConv2d(192, 48, 1), BasicConv2d(48, 64, 5, padding=2))
        self.branch2 = nn.Sequential(
            BasicConv2d(192, 64, 1),
            BasicConv2d(64, 96, 3, padding=1),
            BasicConv2d(96, 96, 3, padding=1),
        )
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), BasicConv2d(192, 64, 1)
        )

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class Block35(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(320, 32, 1)
        self.branch1 = nn.Sequential(BasicConv2d(320, 32, 1), BasicConv2d(32, 32, 3, padding=1))
        self.branch2 = nn.Sequential(
            BasicConv2d(320, 32, 1),
            BasicConv2d(32, 48, 3, padding=1),
            BasicConv2d(48, 64, 3, padding=1),
        )
        self.conv2d = nn.Conv2d(128, 320, 1)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x):
        out = torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)
        return self.relu(self.conv2d(out) * self.scale + x)


class Mixed6a(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(320, 384, 3, stride=2)
        self.branch1 = nn.Sequential(
            BasicConv2d(320, 256, 1),
            BasicConv2d(256, 256, 3, padding=1),
            BasicConv2d(256, 384, 3, stride=2),
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class Block17(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(1088, 192, 1)
        self.branch1 = nn.Sequential(
            BasicConv2d(1088, 128, 1),
            BasicConv2d(128, 160, (1, 7), padding=(0, 3)),
            BasicConv2d(160, 192, (7, 1), padding=(3, 0)),
        )
        self.conv2d = nn.Conv2d(384, 1088, 1)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x):
        out = torch.cat([self.branch0(x), self.branch1(x)], 1)
        return self.relu(self.conv2d(out) * self.scale + x)


class Mixed7a(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv2d(1088, 256, 1), BasicConv2d(256, 384, 3, stride=2))
        self.branch1 = nn.Sequential(BasicConv2d(1088, 256, 1), BasicConv2d(256, 288, 3, stride=2))
        self.branch2 = nn.Sequential(
            BasicConv2d(1088, 256, 1),
            BasicConv2d(256, 288, 3, padding=1),
            BasicConv2d(288, 320, 3, stride=2),
        )
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class Block8(nn.Module):
    def __init__(self, scale: float = 1.0, no_relu: bool = False):
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(2080, 192, 1)
        self.branch1 = nn.Sequential(
            BasicConv2d(2080, 192, 1),
            BasicConv2d(192, 224, (1, 3), padding=(0, 1)),
            BasicConv2d(224, 256, (3, 1), padding=(1, 0)),
        )
        self.conv2d = nn.Conv2d(448, 2080, 1)
        self.relu = None if no_relu else nn.ReLU(inplace=False)

    def forward(self, x):
        out = torch.cat([self.branch0(x), self.branch1(x)], 1)
        out = self.conv2d(out) * self.scale + x
        return out if self.relu is None else self.relu(out)


def inception_resnet_v2_base() -> nn.Sequential:
    """The 16 children of Cadene's InceptionResNetV2 before ``last_linear``, in order."""
    return nn.Sequential(
        BasicConv2d(3, 32, 3, stride=2),  # 0 conv2d_1a
        BasicConv2d(32, 32, 3),  # 1 conv2d_2a
        BasicConv2d(32, 64, 3, padding=1),  # 2 conv2d_2b
        nn.MaxPool2d(3, stride=2),  # 3 maxpool_3a
        BasicConv2d(64, 80, 1),  # 4 conv2d_3b
        BasicConv2d(80, 192, 3),  # 5 conv2d_4a
        nn.MaxPool2d(3, stride=2),  # 6 maxpool_5a
        Mixed5b(),  # 7 mixed_5b
        nn.Sequential(*[Block35(0.17) for _ in range(10)]),  # 8 repeat
        Mixed6a(),  # 9 mixed_6a
        nn.Sequential(*[Block17(0.10) for _ in range(20)]),  # 10 repeat_1
        Mixed7a(),  # 11 mixed_7a
        nn.Sequential(*[Block8(0.20) for _ in range(9)]),  # 12 repeat_2
        Block8(no_relu=True),  # 13 block8
        BasicConv2d(2080, 1536, 1),  # 14 conv2d_7b
        # 15 avgpool_1a: kernel 8, stride 8 → on the 10×14 map only the top-left 8×8 cells count.
        nn.AvgPool2d(8, count_include_pad=False),
    )


def model_qa_head() -> nn.Sequential:
    """The ``model_qa`` regression head of the port's training notebook."""
    return nn.Sequential(
        nn.Linear(1536, 2048),
        nn.ReLU(inplace=False),
        nn.BatchNorm1d(2048),
        nn.Dropout(0.25),
        nn.Linear(2048, 1024),
        nn.ReLU(inplace=False),
        nn.BatchNorm1d(1024),
        nn.Dropout(0.25),
        nn.Linear(1024, 256),
        nn.ReLU(inplace=False),
        nn.BatchNorm1d(256),
        nn.Dropout(0.5),
        nn.Linear(256, 1),
    )


class KonCept512(QualityModel):
    """KonCept512: views in [0, 1] → predicted MOS on 0–100; good quality iff > 50."""

    name = "koncept512"
    higher_is_better = True
    threshold = 50.0
    default_target = 30.0  # task experience: scores just under 50 drifted back after JPEG-90
    view_size = (384, 512)
    architecture = "koncept512-irv2-avgpool8-topleft"

    def __init__(self, state_dict: dict[str, torch.Tensor] | None = None, label: str | None = None):
        """Build the network; with ``state_dict`` load it strictly (see ``pixcamd.models.weights``).

        Without weights the network keeps PyTorch's random initialization, which only serves
        timing: ``fingerprint`` then says ``random`` so no report can pass it off as the real model.
        """
        super().__init__()
        self.base = inception_resnet_v2_base()
        self.fc = model_qa_head()
        if state_dict is not None:
            self.load_state_dict(state_dict, strict=True)
            weights = "sha256:" + tensors_sha256(self.state_dict().values())[:16]
        else:
            weights = "random-init"
        self.fingerprint = f"{self.architecture}@{label or weights}"
        self.train(False)
        for p in self.parameters():
            p.requires_grad_(False)  # we attack the input, never the scorer

    def features(self, views: torch.Tensor) -> torch.Tensor:
        """The 1536×H'×W' map before pooling (10×14 for a 384×512 view)."""
        check_views(views, MIN_SIDE, MAX_SIDE)
        return nn.Sequential(*list(self.base)[:-1])((views - 0.5) / 0.5)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        check_views(views, MIN_SIDE, MAX_SIDE)
        pooled = self.base((views - 0.5) / 0.5)
        return self.fc(pooled.flatten(1)).squeeze(1)
